package main

import "github.com/spf13/pflag"

// consoleFlags are serve's flags for the web console at /admin/
// (docs/console.md).
type consoleFlags struct {
	allowHTTP  bool
	repoWebURL string
}

func (c *consoleFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&c.allowHTTP, "console-allow-http", false, "serve the web console over plain HTTP to any address (default: plain HTTP on loopback only)")
	fs.StringVar(&c.repoWebURL, "repo-web-url", "", "link the console's errors to the Git host: a URL with {commit}, {path} and {line}, e.g. https://github.com/org/net/blob/{commit}/{path}#L{line}")
}
