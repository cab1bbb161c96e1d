from pbrbot.cli import main

main()
