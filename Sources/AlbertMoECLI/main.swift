AlbertMoECommand.main()
