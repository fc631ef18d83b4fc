package control

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"tailscale.com/tailcfg"
)

// TestSSHActionRejects: the callback tailscaled fetches over Noise for a
// session under an SSH "check" rule gets a 200 with a rejecting action
// and a message, for any node pair and user; a 404 makes tailscaled retry
// for half an hour.
func TestSSHActionRejects(t *testing.T) {
	ts := startServer(t, testTailnet(), "")
	n := newRawNode(t, ts)
	if r := n.register(n.registerReq(aliceKey)); r.Error != "" {
		t.Fatalf("register: %s", r.Error)
	}
	want := tailcfg.SSHAction{Reject: true, Message: sshCheckRejection}
	for _, path := range []string{
		"/machine/ssh/action/1/to/2?local_user=root",
		"/machine/ssh/action/7/to/9?local_user=alice%40example.com",
		"/machine/ssh/action/$SRC_NODE_ID/to/$DST_NODE_ID", // placeholders not substituted
	} {
		t.Run(path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://unused"+path, nil)
			res, err := n.c.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 {
				t.Fatalf("GET %s: HTTP %d %s, want 200 with an SSHAction", path, res.StatusCode, body)
			}
			var got tailcfg.SSHAction
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("GET %s: body %q is not an SSHAction: %v", path, body, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GET %s: action (-want +got):\n%s", path, diff)
			}
		})
	}
}
