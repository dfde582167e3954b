// Command agentaudit is the agentaudit binary; see package cli.
package main

import "github.com/agentaudit/agentaudit/cli"

func main() { cli.Main() }
