import AlbertMoECommands

TrainMLM.main()
