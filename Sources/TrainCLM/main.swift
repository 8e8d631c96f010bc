import AlbertMoECommands

TrainCLM.main()
