package gitsync_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/tailplane/tailplane/gitsync"
	"github.com/tailplane/tailplane/schema"
)

// A server follows the main branch, applies every revision that loads, and
// lets the forge's push webhook trigger a check.
func ExampleNewRepo() {
	ctx := context.Background()
	repo, err := gitsync.NewRepo(ctx, gitsync.Config{
		URL:           "https://git.example.com/ops/tailnet.git",
		Path:          "tailnet",
		Poll:          time.Minute,
		Auth:          gitsync.Auth{PasswordFile: "/run/secrets/git-token"},
		VerifyKeyring: "/etc/tailplane/admins.asc",
		Logf:          log.Printf,
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer repo.Close()

	secret, _ := os.ReadFile("/run/secrets/webhook")
	http.Handle("/webhook", gitsync.WebhookHandler(secret, repo.Trigger))

	for rev := range repo.Revisions() {
		tailnet, diags := schema.Load(ctx, rev.FS, ".")
		if diags.HasErrors() {
			log.Printf("revision %s (%s) does not load, keeping the previous one:\n%v", rev.ID, rev.Author, diags)
			continue
		}
		_ = tailnet // hand it to reconcile
	}
}

// During development, follow a directory instead.
func ExampleNewDir() {
	ctx := context.Background()
	dir, err := gitsync.NewDir(ctx, "./tailnet", gitsync.DirConfig{})
	if err != nil {
		log.Print(err)
		return
	}
	defer dir.Close()
	for rev := range dir.Revisions() {
		log.Printf("config changed: %s", rev.ID)
	}
}
