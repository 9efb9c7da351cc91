# ctest helper: run the tracer on one golden prompt and diff its output with the golden trace.
#   cmake -DTRACER= -DPYTHON= -DDIFF= -DMODEL= -DPROMPT= -DGOLDEN= -DOUT= -P run_trace.cmake
get_filename_component(out_dir "${OUT}" DIRECTORY)
file(MAKE_DIRECTORY "${out_dir}")
execute_process(COMMAND "${TRACER}" -m "${MODEL}" -f "${PROMPT}" -n 32 -k 8 -t 1
  OUTPUT_FILE "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TRACER} failed (${rc}) on ${MODEL} ${PROMPT}")
endif()
execute_process(COMMAND "${PYTHON}" "${DIFF}" "${GOLDEN}" "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "trace differs from ${GOLDEN}")
endif()
