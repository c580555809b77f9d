# Installs the build tree to a scratch prefix, builds examples/cmake_consumer against it with
# find_package(qmm) and runs the result: the exported package and its link requirements work.
set(prefix ${BUILD_DIR}/consumer-test/prefix)
set(bin ${BUILD_DIR}/consumer-test/build)
file(REMOVE_RECURSE ${BUILD_DIR}/consumer-test)
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${prefix};--component;Unspecified"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR};-B;${bin};-DCMAKE_PREFIX_PATH=${prefix};-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${bin}"
    "${bin}/quickstart")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${step}\n${out}\n${err}")
  endif()
endforeach()
message(STATUS "${out}")
