import AlbertMoECommands

TrainMLM.main(CommandLineArguments.current)
