# ctest fixture of the R package tests: installs the qmm build in BUILD_DIR into WORK/prefix,
# builds the package tarball from PKG_DIR in WORK (the source tree stays clean) and installs it
# into the R library WORK/lib. Arguments: R, BUILD_DIR, PKG_DIR, WORK; QMM_HOME comes from the
# environment (WORK/prefix).
file(REMOVE_RECURSE ${WORK}/prefix ${WORK}/lib)
file(GLOB _old ${WORK}/qmm_*.tar.gz)
if(_old)
  file(REMOVE ${_old})
endif()
file(MAKE_DIRECTORY ${WORK}/lib)

function(run)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK}/prefix)
run(${R} CMD build --no-build-vignettes --no-manual ${PKG_DIR})
file(GLOB _tarball ${WORK}/qmm_*.tar.gz)
run(${R} CMD INSTALL --library=${WORK}/lib ${_tarball})
