# ctest helper: run PROGRAM with ARGS (a ;-list) and INPUT as its standard input.
execute_process(COMMAND "${PROGRAM}" ${ARGS} INPUT_FILE "${INPUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
