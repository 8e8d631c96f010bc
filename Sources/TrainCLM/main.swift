import AlbertMoECommands

TrainCLM.main(CommandLineArguments.current)
