package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

func init() {
	register(&command{
		name:    "authkey",
		summary: "generate an auth key and the secretHash to declare it with",
		run:     runAuthKey,
	})
}

// keyAlphabet is the set of characters in generated key secrets.
const keyAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newKeySecret returns prefix followed by n random characters from keyAlphabet
// (about 5.8 bits each, so 40 characters carry more than 230 bits).
func newKeySecret(prefix string, n int) (string, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(prefix)
	for _, c := range buf {
		// Resample bytes past the last whole multiple of the alphabet's
		// size, so every character is equally likely.
		for int(c) >= 256-256%len(keyAlphabet) {
			var one [1]byte
			if _, err := rand.Read(one[:]); err != nil {
				return "", err
			}
			c = one[0]
		}
		b.WriteByte(keyAlphabet[int(c)%len(keyAlphabet)])
	}
	return b.String(), nil
}

// secretHash is the form a key is declared with in the config repository.
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func runAuthKey(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "authkey", "new [--name NAME] [--user LOGIN | --tags tag:a,tag:b] [--reusable] [--ephemeral] [--api]")
	name := fs.String("name", "", "key name to print in the config snippet (empty: \"my-key\")")
	user := fs.String("user", "", "login the registered nodes belong to")
	tags := fs.StringSlice("tags", nil, "tags given to registered nodes")
	reusable := fs.Bool("reusable", false, "the key may register more than one node")
	ephemeral := fs.Bool("ephemeral", false, "registered nodes are removed when they go away")
	api := fs.Bool("api", false, "generate an admin API key (tskey-api-…) instead of an auth key")
	if ok, code := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || fs.Arg(0) != "new" {
		fmt.Fprintln(env.stderr, "tailplane authkey: the only subcommand is \"new\"")
		fs.Usage()
		return exitUsage
	}
	if *user != "" && len(*tags) > 0 {
		fmt.Fprintln(env.stderr, "tailplane authkey: give --user or --tags, not both")
		return exitUsage
	}
	prefix, section := "tskey-auth-", "authKeys"
	if *api {
		prefix, section = "tskey-api-", "apiKeys"
	}
	secret, err := newKeySecret(prefix, 40)
	if err != nil {
		fmt.Fprintf(env.stderr, "tailplane authkey: reading randomness: %v\n", err)
		return exitProblems
	}
	if *name == "" {
		*name = "my-key"
	}
	hash := secretHash(secret)
	fmt.Fprintf(env.stdout, "Key (shown once; give it to the node, never commit it):\n\n  %s\n\n", secret)
	fmt.Fprintf(env.stdout, "Declare it in your config repository:\n\n  %q: {\n    %q: {\n", section, *name)
	switch {
	case *api:
		fmt.Fprintf(env.stdout, "      \"role\": \"admin\",\n")
	case *user != "":
		fmt.Fprintf(env.stdout, "      \"user\": %q,\n", *user)
	case len(*tags) > 0:
		quoted := make([]string, len(*tags))
		for i, t := range *tags {
			quoted[i] = fmt.Sprintf("%q", t)
		}
		fmt.Fprintf(env.stdout, "      \"tags\": [%s],\n", strings.Join(quoted, ", "))
	default:
		fmt.Fprintf(env.stdout, "      \"user\": \"you@example.com\", // or \"tags\": [\"tag:server\"]\n")
	}
	if !*api {
		if *reusable {
			fmt.Fprintf(env.stdout, "      \"reusable\": true,\n")
		}
		if *ephemeral {
			fmt.Fprintf(env.stdout, "      \"ephemeral\": true,\n")
		}
	}
	fmt.Fprintf(env.stdout, "      \"secretHash\": %q,\n    },\n  },\n", hash)
	return exitOK
}
