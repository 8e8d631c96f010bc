import AlbertMoECommands

AlbertMoECommand.main(CommandLineArguments.current)
