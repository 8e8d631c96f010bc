import AlbertMoECommands

AlbertMoECommand.main()
