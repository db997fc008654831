# NvccCheck.cmake — compile every .cu of the repository with nvcc for the real architectures, so that GPU
# builds cannot rot on machines (CI included) that have the CUDA toolkit but no GPU.
#
#   cmake -P cmake/NvccCheck.cmake                      (from the repository root)
#   cmake -DARCHS="80;90;100" -P cmake/NvccCheck.cmake  (other architectures)
#   cmake --build build --target nvcc_check             (the same, from a configured build)
#
# Each file is compiled on its own (-c, -Werror=all-warnings for nvcc's own diagnostics) with the include
# folders the build uses: common/, common/'s CUDA headers, and every chapter folder. Exits non-zero, naming
# each failing file, if any does not compile.
if(NOT SOURCE_DIR)
  get_filename_component(SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
endif()
if(NOT NVCC)
  find_program(NVCC nvcc HINTS /usr/local/cuda/bin)
  if(NOT NVCC)
    message(FATAL_ERROR "nvcc not found (put the CUDA toolkit's bin/ on PATH or pass -DNVCC=/path/to/nvcc)")
  endif()
endif()
if(NOT ARCHS)
  set(ARCHS 80 90)
endif()
if(NOT WORK_DIR)
  set(WORK_DIR ${SOURCE_DIR}/build-nvcc-check)
endif()
file(MAKE_DIRECTORY ${WORK_DIR})

set(gencode)
foreach(arch IN LISTS ARCHS)
  list(APPEND gencode -gencode arch=compute_${arch},code=sm_${arch})
endforeach()
set(includes -I${SOURCE_DIR}/common)
file(GLOB chapter_dirs LIST_DIRECTORIES true ${SOURCE_DIR}/chapters/*)
foreach(dir IN LISTS chapter_dirs)
  if(IS_DIRECTORY ${dir})
    list(APPEND includes -I${dir})
  endif()
  if(IS_DIRECTORY ${dir}/tests) # test helpers shared between chapters (chapter 03's cnn_parity.h)
    list(APPEND includes -I${dir}/tests)
  endif()
endforeach()

file(GLOB_RECURSE sources RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/chapters/*.cu ${SOURCE_DIR}/common/*.cu
     ${SOURCE_DIR}/tests/*.cu)
# The simulator's own tests call simulator-only functions (cusimSetOrder, cusimLastErrorMessage): they are
# not GPU code, and are the one exception.
list(FILTER sources EXCLUDE REGEX "^common/cusim/")
list(SORT sources)
set(failed)
set(count 0)
foreach(src IN LISTS sources)
  string(MAKE_C_IDENTIFIER ${src} object)
  get_filename_component(src_dir ${SOURCE_DIR}/${src} DIRECTORY)
  execute_process(
    COMMAND ${NVCC} -std=c++17 ${gencode} -Werror=all-warnings -Xcompiler=-Wall,-Wextra -D_POSIX_C_SOURCE=200809L
            ${includes} -I${src_dir} -c ${SOURCE_DIR}/${src} -o ${WORK_DIR}/${object}.o
    RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  math(EXPR count "${count} + 1")
  if(result EQUAL 0)
    message(STATUS "nvcc ok   ${src}")
  else()
    message("nvcc FAIL ${src}\n${output}")
    list(APPEND failed ${src})
  endif()
endforeach()
list(LENGTH failed n_failed)
if(n_failed GREATER 0)
  message(FATAL_ERROR "${n_failed} of ${count} .cu files do not compile with nvcc (sm ${ARCHS}): ${failed}")
endif()
message(STATUS "all ${count} .cu files compile with nvcc for sm ${ARCHS}")
