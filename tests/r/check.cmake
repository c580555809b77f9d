# R CMD check --no-manual of the tarball the r_install fixture built in WORK; fails on any
# ERROR or WARNING (R CMD check itself exits 0 on warnings). NOTEs are printed, not fatal.
file(GLOB _tarball ${WORK}/qmm_*.tar.gz)
if(NOT _tarball)
  message(FATAL_ERROR "no qmm_*.tar.gz in ${WORK}: the r_install fixture did not run")
endif()
file(WRITE ${WORK}/empty-repo/src/contrib/PACKAGES "")
set(ENV{QMM_R_EMPTY_REPO} ${WORK}/empty-repo)
execute_process(COMMAND ${R} CMD check --no-manual --no-build-vignettes ${_tarball}
                WORKING_DIRECTORY ${WORK} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0 OR out MATCHES "Status: [^\n]*(ERROR|WARNING)")
  message(FATAL_ERROR "R CMD check reported errors or warnings (see ${WORK}/qmm.Rcheck)")
endif()
