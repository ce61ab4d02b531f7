# Run by `cmake --install` (and `make install`): the files whose text names install paths,
# written for the prefix in effect at install time (so `cmake --install --prefix P` and
# `make install PREFIX=P` agree). DESTDIR is honoured by file(INSTALL).
# Set by the install(CODE) in CMakeLists.txt: BERTH_SOURCE_DIR, BERTH_BINARY_DIR,
# BERTH_BINDIR (relative to the prefix).
set(prefix "${CMAKE_INSTALL_PREFIX}")
# GNUInstallDirs' rule: the /usr prefix keeps its configuration in /etc
if(prefix STREQUAL "/usr")
    set(sysconfdir "/etc")
else()
    set(sysconfdir "${prefix}/etc")
endif()
set(BERTH_BIN "${prefix}/${BERTH_BINDIR}/berth")
set(BERTH_CONFIG "${sysconfdir}/berth/berth.json")
# a staging directory of this run's own: installs with other prefixes may run at once
# (the tests do), and each writes its own unit
string(RANDOM LENGTH 16 run)
set(staging "${BERTH_BINARY_DIR}/install-staging/${run}")
configure_file("${BERTH_SOURCE_DIR}/deploy/systemd/berth.service.in" "${staging}/berth.service"
    @ONLY)
file(INSTALL "${staging}/berth.service" DESTINATION "${prefix}/lib/systemd/system")
file(REMOVE_RECURSE "${staging}")
file(INSTALL "${BERTH_SOURCE_DIR}/deploy/systemd/berth.sysusers"
    DESTINATION "${prefix}/lib/sysusers.d" RENAME berth.conf)
# the service's configuration: installed once, never over an administrator's edits
if(EXISTS "$ENV{DESTDIR}${BERTH_CONFIG}")
    message(STATUS "Keeping: $ENV{DESTDIR}${BERTH_CONFIG}")
else()
    file(INSTALL "${BERTH_SOURCE_DIR}/deploy/systemd/berth.json"
        DESTINATION "${sysconfdir}/berth" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
        WORLD_READ)
endif()
