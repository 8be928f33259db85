from aetool.cli import main

main()
