from test_coordinator.entrypoints.cli import main

main()
