# powervmctl (src/ctl/) tests: tests/func/ctl_test.py, with /usr/bin/python3.
#   ctl_journal    every command against a journal of known contents (ctl_fixture), powervmd
#                  not running: reads, JSON output, "resumes when it starts", daemon commands
#                  refused with exit 3, usage, help, permissions, configuration fallback
#   ctl_daemon     every command against a running stack (scripts/stack: pvmsim + powervmd),
#                  then with the stack stopped
#   ctl_watch_pty  `queue watch` in a pseudo-terminal: the progress bar, exit at the end, both
#                  through the daemon and from the journal
if(TARGET powervmctl)
  add_executable(ctl_fixture func/ctl_fixture.c)
  target_link_libraries(ctl_fixture PRIVATE pvm_queue pvm_common)
  add_dependencies(powervmctl ctl_fixture)
  foreach(part journal daemon watch_pty)
    add_test(NAME ctl_${part}
             COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/func/ctl_test.py ${part})
    set_tests_properties(ctl_${part} PROPERTIES ENVIRONMENT "${PVM_TEST_ENV}" TIMEOUT 900)
  endforeach()
endif()
