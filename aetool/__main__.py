from aetool.cli import main

if __name__ == "__main__":
    main()
