from mcp_notary.cli.main import main

main()
