package acmedns

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// request is what a fake API server saw of one request.
type request struct {
	Method, Path, Query, Body string
}

type recorder struct {
	mu   sync.Mutex // guards the fields below
	reqs []request
}

func (r *recorder) add(req *http.Request) string {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, request{req.Method, req.URL.Path, req.URL.RawQuery, string(body)})
	return string(body)
}

func (r *recorder) take() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func TestCloudflareRequests(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if got := req.Header.Get("Authorization"); got != "Bearer cf-token" {
			t.Errorf("Authorization = %q; want the API token", got)
		}
		rec.add(req)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case req.URL.Path == "/zones":
			fmt.Fprint(w, `{"success":true,"result":[{"id":"zone123","name":"ts.example.test"}],"result_info":{"page":1,"per_page":50,"count":1,"total_count":1,"total_pages":1}}`)
		case req.Method == "POST":
			fmt.Fprint(w, `{"success":true,"result":{"id":"rec1","type":"TXT","name":"_acme-challenge.node1.ts.example.test","content":"token-a"}}`)
		case req.Method == "GET":
			fmt.Fprint(w, `{"success":true,"result":[{"id":"rec1","type":"TXT","name":"_acme-challenge.node1.ts.example.test","content":"\"token-a\""},{"id":"rec2","type":"TXT","name":"_acme-challenge.node1.ts.example.test","content":"other"}],"result_info":{"page":1,"per_page":100,"count":2,"total_count":2,"total_pages":1}}`)
		case req.Method == "DELETE":
			fmt.Fprint(w, `{"success":true,"result":{"id":"rec1"}}`)
		}
	}))
	defer srv.Close()
	p, err := NewCloudflare(CloudflareConfig{APIToken: "cf-token", Zone: "ts.example.test", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetTXT(t.Context(), "_acme-challenge.node1.ts.example.test.", "token-a"); err != nil {
		t.Fatal(err)
	}
	set := rec.take()
	if len(set) != 2 {
		t.Fatalf("SetTXT made %d requests; want zone lookup and create: %+v", len(set), set)
	}
	if diff := cmp.Diff(request{"GET", "/zones", "name=ts.example.test&per_page=50", ""}, set[0]); diff != "" {
		t.Errorf("zone lookup request (-want +got):\n%s", diff)
	}
	type created struct {
		Type, Name, Content string
		TTL                 int
	}
	var got created
	if err := json.Unmarshal([]byte(set[1].Body), &got); err != nil {
		t.Fatalf("create body %q: %v", set[1].Body, err)
	}
	if diff := cmp.Diff(created{"TXT", "_acme-challenge.node1.ts.example.test", "token-a", 120}, got); diff != "" || set[1].Method != "POST" || set[1].Path != "/zones/zone123/dns_records" {
		t.Errorf("create request %s %s (-want +got):\n%s", set[1].Method, set[1].Path, diff)
	}
	if err := p.DeleteTXT(t.Context(), "_acme-challenge.node1.ts.example.test", "token-a"); err != nil {
		t.Fatal(err)
	}
	del := rec.take()
	if len(del) != 2 {
		t.Fatalf("DeleteTXT made %d requests; want list and one delete: %+v", len(del), del)
	}
	if del[0].Method != "GET" || del[0].Path != "/zones/zone123/dns_records" || !strings.Contains(del[0].Query, "type=TXT") || !strings.Contains(del[0].Query, "content=token-a") {
		t.Errorf("DeleteTXT list request = %+v; want GET dns_records filtered by type and content", del[0])
	}
	if diff := cmp.Diff(request{"DELETE", "/zones/zone123/dns_records/rec1", "", ""}, del[1]); diff != "" {
		t.Errorf("DeleteTXT delete request (-want +got):\n%s", diff)
	}
}

// r53Change is the part of a ChangeResourceRecordSets body the test checks.
type r53Change struct {
	Action string   `xml:"ChangeBatch>Changes>Change>Action"`
	Name   string   `xml:"ChangeBatch>Changes>Change>ResourceRecordSet>Name"`
	Type   string   `xml:"ChangeBatch>Changes>Change>ResourceRecordSet>Type"`
	TTL    int      `xml:"ChangeBatch>Changes>Change>ResourceRecordSet>TTL"`
	Values []string `xml:"ChangeBatch>Changes>Change>ResourceRecordSet>ResourceRecords>ResourceRecord>Value"`
}

func TestRoute53Requests(t *testing.T) {
	rec := &recorder{}
	var (
		mu      sync.Mutex // guards current
		current []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasPrefix(req.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
			t.Errorf("Authorization = %q; want a SigV4 signature with the access key", req.Header.Get("Authorization"))
		}
		body := rec.add(req)
		w.Header().Set("Content-Type", "text/xml")
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasSuffix(req.URL.Path, "/rrset") && req.Method == "GET":
			var rrs strings.Builder
			for _, v := range current {
				fmt.Fprintf(&rrs, "<ResourceRecord><Value>%s</Value></ResourceRecord>", xmlEscape(v))
			}
			sets := ""
			if len(current) > 0 {
				sets = "<ResourceRecordSet><Name>_acme-challenge.node1.ts.example.test.</Name><Type>TXT</Type><TTL>300</TTL><ResourceRecords>" + rrs.String() + "</ResourceRecords></ResourceRecordSet>"
			}
			fmt.Fprintf(w, `<ListResourceRecordSetsResponse><ResourceRecordSets>%s</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>`, sets)
		case strings.HasSuffix(req.URL.Path, "/rrset"):
			var c r53Change
			if err := xml.Unmarshal([]byte(body), &c); err != nil {
				t.Errorf("ChangeResourceRecordSets body: %v", err)
			}
			current = c.Values
			if c.Action == "DELETE" {
				current = nil
			}
			fmt.Fprint(w, `<ChangeResourceRecordSetsResponse><ChangeInfo><Id>/change/C1</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`)
		case strings.HasPrefix(req.URL.Path, "/2013-04-01/change/"):
			fmt.Fprint(w, `<GetChangeResponse><ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></GetChangeResponse>`)
		default:
			t.Errorf("unexpected request %s %s", req.Method, req.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	p, err := NewRoute53(t.Context(), Route53Config{
		HostedZoneID: "Z123", AccessKeyID: "AKIDTEST", SecretAccessKey: "aws-secret", Endpoint: srv.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	const name = "_acme-challenge.node1.ts.example.test"
	steps := []struct {
		op, value string
		want      *r53Change // nil: no change request
	}{
		{"set", "token-a", &r53Change{"UPSERT", name + ".", "TXT", 60, []string{`"token-a"`}}},
		{"set", "token-b", &r53Change{"UPSERT", name + ".", "TXT", 60, []string{`"token-a"`, `"token-b"`}}},
		{"delete", "token-a", &r53Change{"UPSERT", name + ".", "TXT", 60, []string{`"token-b"`}}},
		// The DELETE repeats the set as it is, with its TTL (300), not ours.
		{"delete", "token-b", &r53Change{"DELETE", name + ".", "TXT", 300, []string{`"token-b"`}}},
		{"delete", "token-b", nil},
	}
	for i, st := range steps {
		if st.op == "set" {
			err = p.SetTXT(t.Context(), name, st.value)
		} else {
			err = p.DeleteTXT(t.Context(), name, st.value)
		}
		if err != nil {
			t.Fatalf("step %d %s %s: %v", i, st.op, st.value, err)
		}
		var got *r53Change
		var paths []string
		for _, r := range rec.take() {
			paths = append(paths, r.Method+" "+r.Path)
			if r.Method == "POST" {
				got = new(r53Change)
				if err := xml.Unmarshal([]byte(r.Body), got); err != nil {
					t.Fatal(err)
				}
			}
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("step %d %s %s: change (-want +got):\n%s\nrequests: %q", i, st.op, st.value, diff, paths)
		}
		if st.op == "set" && paths[len(paths)-1] != "GET /2013-04-01/change/C1" {
			t.Errorf("step %d: SetTXT did not wait for the change: %q", i, paths)
		}
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
