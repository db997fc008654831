# Test registration for the course.
#
#   course_add_test(<name> COMMAND <exe> [args...] LABELS <chNN|common|...> [TIMEOUT <s>] [WILL_FAIL])
#
# Every test gets SKIP_RETURN_CODE 77 (a skip is shown as skipped with its reason, never as a pass) and a
# timeout, so that a stub or a bug can make a test fail but never hang the suite. Tests that run on the host
# CPU get the label `cpu` unless they say `sim` or `gpu` themselves.
set(COURSE_GOLDEN_DIR ${CMAKE_SOURCE_DIR}/reference/golden)
set(COURSE_DATA_DIR ${CMAKE_SOURCE_DIR}/data)

function(course_add_test name)
  cmake_parse_arguments(T "WILL_FAIL" "TIMEOUT;WORKING_DIRECTORY" "COMMAND;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT T_COMMAND)
    message(FATAL_ERROR "course_add_test(${name}): COMMAND is required")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set(labels ${T_LABELS})
  if(NOT "sim" IN_LIST labels AND NOT "gpu" IN_LIST labels)
    list(APPEND labels cpu)
  endif()
  if(T_WORKING_DIRECTORY)
    add_test(NAME ${name} COMMAND ${T_COMMAND} WORKING_DIRECTORY ${T_WORKING_DIRECTORY})
  else()
    add_test(NAME ${name} COMMAND ${T_COMMAND})
  endif()
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${T_TIMEOUT} LABELS "${labels}")
  if(T_WILL_FAIL)
    set_tests_properties(${name} PROPERTIES WILL_FAIL TRUE)
  endif()
  if(T_ENVIRONMENT)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${T_ENVIRONMENT}")
  endif()
endfunction()
