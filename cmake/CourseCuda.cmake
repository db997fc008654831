# CUDA support for the course: every .cu builds twice — for the CPU simulator (common/cusim) and, when nvcc is
# found, for a real GPU — and every CUDA test is registered for both.
#
#   course_cuda_library(<name> SOURCES <.cu/.cuh/.c...> [LINK <libs>] [CUDA_LINK <course cuda libs>] [CUBLAS])
#       -> <name>_sim (always) and <name>_gpu (with nvcc): static libraries. CUDA_LINK names other
#          course_cuda_library targets without suffix; the matching variant is linked.
#   course_cuda_executable(<name> SOURCES ... [LINK ...] [CUDA_LINK ...] [CUBLAS] [PROGRAM] [SIM_ONLY])
#       -> <name>_sim and (unless SIM_ONLY) <name>_gpu. With PROGRAM (a learner-facing program) the variant
#          of the configured backend is also written as bin/<name>.
#   course_cuda_add_test(<name> TARGET <exe base name> [ARGS ...] LABELS <chNN...> [TIMEOUT s] [SIM_ONLY])
#       -> <name>.fwd, <name>.rev, <name>.rand (label `sim`, CUSIM_ORDER=forward/reverse/random:SEED) and
#          <name>.gpu (label `gpu`; exits 77 with a reason where there is no nvcc build or no GPU).
#
# The backend for the learner-facing programs: -DCOURSE_CUDA_BACKEND=AUTO (default: the GPU when nvcc and an
# NVIDIA GPU are both present, else the simulator), SIM, or GPU. Architectures for GPU builds: the GPU's own
# ("native") when one is present, else sm_80 and sm_90; override with -DCMAKE_CUDA_ARCHITECTURES=...
#
# Simulator build of a .cu: cusim_translate rewrites <<< >>> launches and __shared__ declarations (see
# common/cusim/cusim_translate.c), then the host C++ compiler builds it with `-include cusim.h`. Nothing but
# CMake and the C/C++ compiler is needed.
enable_language(CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)

set(COURSE_CUDA_BACKEND AUTO CACHE STRING "Backend of the CUDA chapters' programs: AUTO, SIM or GPU")
set_property(CACHE COURSE_CUDA_BACKEND PROPERTY STRINGS AUTO SIM GPU)

set(COURSE_HAVE_GPU OFF)
find_program(COURSE_NVIDIA_SMI nvidia-smi)
if(COURSE_NVIDIA_SMI)
  execute_process(COMMAND ${COURSE_NVIDIA_SMI} -L RESULT_VARIABLE smi_result OUTPUT_VARIABLE smi_output
                  ERROR_QUIET TIMEOUT 20)
  if(smi_result EQUAL 0 AND smi_output MATCHES "GPU [0-9]+:")
    set(COURSE_HAVE_GPU ON)
  endif()
endif()

# GPU variants (the *_gpu targets, built by nvcc) need nvcc, and are left out of sanitizer builds: ASan/UBSan
# instrument the C libraries they link, and nvcc's link step neither passes -fsanitize nor could the CUDA
# driver run under ASan's shadow memory anyway. The simulator variants are what the sanitizers check.
if(COURSE_HAVE_NVCC AND NOT COURSE_SANITIZE)
  set(COURSE_GPU_VARIANTS ON)
  set(COURSE_NO_GPU_VARIANT_REASON "")
elseif(COURSE_HAVE_NVCC)
  set(COURSE_GPU_VARIANTS OFF)
  set(COURSE_NO_GPU_VARIANT_REASON "this is a sanitizer build (COURSE_SANITIZE), which builds no GPU variant")
else()
  set(COURSE_GPU_VARIANTS OFF)
  set(COURSE_NO_GPU_VARIANT_REASON "this build has no CUDA compiler (nvcc), so there is no GPU variant")
endif()

if(COURSE_GPU_VARIANTS)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    if(COURSE_HAVE_GPU)
      set(CMAKE_CUDA_ARCHITECTURES native)
    else()
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
endif()

string(TOUPPER "${COURSE_CUDA_BACKEND}" COURSE_CUDA_BACKEND)
if(COURSE_CUDA_BACKEND STREQUAL "AUTO")
  if(COURSE_GPU_VARIANTS AND COURSE_HAVE_GPU)
    set(COURSE_CUDA_PROGRAM_BACKEND gpu)
  else()
    set(COURSE_CUDA_PROGRAM_BACKEND sim)
  endif()
elseif(COURSE_CUDA_BACKEND STREQUAL "GPU")
  if(NOT COURSE_GPU_VARIANTS)
    message(FATAL_ERROR "COURSE_CUDA_BACKEND=GPU, but ${COURSE_NO_GPU_VARIANT_REASON}")
  endif()
  set(COURSE_CUDA_PROGRAM_BACKEND gpu)
elseif(COURSE_CUDA_BACKEND STREQUAL "SIM")
  set(COURSE_CUDA_PROGRAM_BACKEND sim)
else()
  message(FATAL_ERROR "COURSE_CUDA_BACKEND must be AUTO, SIM or GPU (got '${COURSE_CUDA_BACKEND}')")
endif()

if(COURSE_CUDA_PROGRAM_BACKEND STREQUAL "gpu")
  message(STATUS "CUDA chapters: programs run on the GPU (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES}); tests run on the GPU (label gpu) and the simulator "
                 "(label sim)")
elseif(COURSE_GPU_VARIANTS)
  message(STATUS "CUDA chapters: no NVIDIA GPU found - programs run on the CPU simulator (common/cusim). nvcc "
                 "${CMAKE_CUDA_COMPILER_VERSION} still builds the GPU variants (architectures "
                 "${CMAKE_CUDA_ARCHITECTURES}); their tests (label gpu) will skip")
else()
  message(STATUS "CUDA chapters: programs and tests run on the CPU simulator (common/cusim): "
                 "${COURSE_NO_GPU_VARIANT_REASON}; tests labelled gpu will skip")
endif()

# ThreadSanitizer mode of the simulator: the simulated kernels are compiled with -fsanitize=thread and every
# CUDA thread is a TSan fiber, so a data race between threads of a block (a missing __syncthreads) is
# reported with both lines. Simulator targets only; not with COURSE_SANITIZE (ASan), as the two exclude
# each other.
option(COURSE_CUSIM_TSAN "Build the simulator's kernels with ThreadSanitizer (race detection)" OFF)
if(COURSE_CUSIM_TSAN AND COURSE_SANITIZE)
  message(FATAL_ERROR "COURSE_CUSIM_TSAN and COURSE_SANITIZE cannot be combined (ThreadSanitizer and "
                      "AddressSanitizer exclude each other): use two build directories")
endif()

set(COURSE_CUSIM_DIR ${CMAKE_SOURCE_DIR}/common/cusim)
# Fixed seed for the random thread order, so that a failure can be replayed (CUSIM_ORDER=random:SEED).
set(COURSE_CUSIM_RANDOM_SEED 20261124)

# Translate the .cu/.cuh among `sources` for the simulator; the rest pass through. Headers keep their name
# in the same output folder, so `#include "x.cuh"` from a translated .cu finds the translated header.
function(_course_cusim_sources out_var)
  set(result)
  foreach(src IN LISTS ARGN)
    get_filename_component(abs ${src} ABSOLUTE)
    get_filename_component(name ${abs} NAME)
    if(abs MATCHES "\\.cu$")
      set(out ${CMAKE_CURRENT_BINARY_DIR}/cusim_gen/${name}.cpp)
    elseif(abs MATCHES "\\.cuh$")
      set(out ${CMAKE_CURRENT_BINARY_DIR}/cusim_gen/${name})
    else()
      list(APPEND result ${abs})
      continue()
    endif()
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/cusim_gen
      COMMAND cusim_translate ${abs} ${out}
      DEPENDS cusim_translate ${abs}
      COMMENT "cusim: translating ${src}"
      VERBATIM)
    list(APPEND result ${out})
  endforeach()
  set(${out_var} ${result} PARENT_SCOPE)
endfunction()

function(_course_cuda_setup target variant)
  cmake_parse_arguments(A "CUBLAS" "" "LINK;CUDA_LINK" ${ARGN})
  target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/common)
  foreach(lib IN LISTS A_CUDA_LINK)
    target_link_libraries(${target} PUBLIC ${lib}_${variant})
  endforeach()
  target_link_libraries(${target} PUBLIC ${A_LINK})
  if(variant STREQUAL "sim")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-include ${COURSE_CUSIM_DIR}/cusim.h>)
    target_link_libraries(${target} PUBLIC cusim)
    if(NOT COURSE_SANITIZE)
      # Every access checked for its type's alignment: a misaligned float2/float4 access in a kernel is then
      # reported by the simulator as cudaErrorMisalignedAddress (common/cusim/cusim.cpp defines the handler
      # the compiler calls; the ASan + UBSan build reports it with UBSan's own runtime instead).
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=alignment>)
    endif()
    if(COURSE_CUSIM_TSAN)
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=thread>)
    endif()
    if(A_CUBLAS)
      target_link_libraries(${target} PUBLIC cusim_cublas)
    endif()
  else()
    set_target_properties(${target} PROPERTIES CUDA_STANDARD 17)
    target_link_libraries(${target} PUBLIC CUDA::cudart)
    if(A_CUBLAS)
      target_link_libraries(${target} PUBLIC CUDA::cublas)
    endif()
  endif()
endfunction()

function(course_cuda_library name)
  cmake_parse_arguments(A "CUBLAS" "" "SOURCES;LINK;CUDA_LINK" ${ARGN})
  set(pass)
  if(A_CUBLAS)
    set(pass CUBLAS)
  endif()
  _course_cusim_sources(sim_sources ${A_SOURCES})
  add_library(${name}_sim STATIC ${sim_sources})
  target_include_directories(${name}_sim PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  _course_cuda_setup(${name}_sim sim ${pass} LINK ${A_LINK} CUDA_LINK ${A_CUDA_LINK})
  if(COURSE_GPU_VARIANTS)
    add_library(${name}_gpu STATIC ${A_SOURCES})
    target_include_directories(${name}_gpu PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
    _course_cuda_setup(${name}_gpu gpu ${pass} LINK ${A_LINK} CUDA_LINK ${A_CUDA_LINK})
  endif()
endfunction()

function(course_cuda_executable name)
  cmake_parse_arguments(A "CUBLAS;PROGRAM;SIM_ONLY" "" "SOURCES;LINK;CUDA_LINK" ${ARGN})
  set(pass)
  if(A_CUBLAS)
    set(pass CUBLAS)
  endif()
  _course_cusim_sources(sim_sources ${A_SOURCES})
  add_executable(${name}_sim ${sim_sources})
  _course_cuda_setup(${name}_sim sim ${pass} LINK ${A_LINK} CUDA_LINK ${A_CUDA_LINK})
  if(COURSE_GPU_VARIANTS AND NOT A_SIM_ONLY)
    add_executable(${name}_gpu ${A_SOURCES})
    _course_cuda_setup(${name}_gpu gpu ${pass} LINK ${A_LINK} CUDA_LINK ${A_CUDA_LINK})
  endif()
  if(A_PROGRAM)
    # bin/<name> is the learner's program, for the configured backend.
    add_custom_command(TARGET ${name}_${COURSE_CUDA_PROGRAM_BACKEND} POST_BUILD
      COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:${name}_${COURSE_CUDA_PROGRAM_BACKEND}>
              ${CMAKE_RUNTIME_OUTPUT_DIRECTORY}/${name}
      VERBATIM)
  endif()
endfunction()

function(course_cuda_add_test name)
  cmake_parse_arguments(T "SIM_ONLY" "TARGET;TIMEOUT" "ARGS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  foreach(order IN ITEMS fwd rev rand)
    if(order STREQUAL "fwd")
      set(spec forward)
    elseif(order STREQUAL "rev")
      set(spec reverse)
    else()
      set(spec random:${COURSE_CUSIM_RANDOM_SEED})
    endif()
    course_add_test(${name}.${order} COMMAND ${T_TARGET}_sim ${T_ARGS} LABELS sim ${T_LABELS}
                    TIMEOUT ${T_TIMEOUT} ENVIRONMENT CUSIM_ORDER=${spec})
  endforeach()
  if(T_SIM_ONLY)
    return()
  endif()
  if(TARGET ${T_TARGET}_gpu)
    course_add_test(${name}.gpu COMMAND ${T_TARGET}_gpu ${T_ARGS} LABELS gpu ${T_LABELS} TIMEOUT ${T_TIMEOUT})
  else()
    course_add_test(${name}.gpu
                    COMMAND course_gpu_unavailable "${name}: ${COURSE_NO_GPU_VARIANT_REASON}"
                    LABELS gpu ${T_LABELS})
  endif()
endfunction()

# The `nvcc_check` target compiles every .cu of the repository with nvcc for sm_80 and sm_90 (what CI runs:
# `cmake --build build --target nvcc_check`, or without a configured build `cmake -P cmake/NvccCheck.cmake`).
if(COURSE_HAVE_NVCC)
  add_custom_target(nvcc_check
    COMMAND ${CMAKE_COMMAND} -DNVCC=${CMAKE_CUDA_COMPILER} -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
            -DWORK_DIR=${CMAKE_BINARY_DIR}/nvcc_check -P ${CMAKE_SOURCE_DIR}/cmake/NvccCheck.cmake
    COMMENT "Compiling every .cu with nvcc for sm_80 and sm_90"
    VERBATIM)
endif()
