package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/tailplane/tailplane/pipeline"
	"github.com/tailplane/tailplane/reconcile"
	"github.com/tailplane/tailplane/schema"
	"github.com/tailplane/tailplane/store"
)

func errBadRepoURL(u string) error {
	return fmt.Errorf("console: repo web URL %q is not an absolute URL with {path} in it (hint: such as https://github.com/org/tailnet/blob/{commit}/{path}#L{line})", u)
}

// problemRow is one error of an attempt, with its link to the Git host.
type problemRow struct {
	pipeline.Problem
	Link string // empty without a repo web URL or a position
}

// fileLink links pos ("file:line:col", as schema.Pos renders it) at
// commit to the Git host; "" when there is no web URL or no file.
func (c *Console) fileLink(commit, pos string) string {
	if c.cfg.RepoWebURL == "" || pos == "" || pos == "-" {
		return ""
	}
	file, line := splitPos(pos)
	if dir := c.cfg.Pipeline.Status().Source.Path; dir != "" && dir != "." {
		file = path.Join(dir, file)
	}
	return strings.NewReplacer("{commit}", commit, "{path}", file, "{line}", line).Replace(c.cfg.RepoWebURL)
}

// posLink links a rule's position in the applied revision.
func (c *Console) posLink(p schema.Pos) string {
	applied := c.cfg.Pipeline.Status().Applied
	if applied == nil || !p.IsValid() {
		return ""
	}
	return c.fileLink(applied.Commit, p.String())
}

// splitPos splits a position as schema.Pos renders it, "file:line:col",
// "file:line" or "file", into the file and the line ("" when absent).
func splitPos(pos string) (file, line string) {
	file = pos
	if rest, col, ok := cutLast(pos); ok && isNumber(col) {
		file = rest
		if rest2, l, ok := cutLast(rest); ok && isNumber(l) {
			file, line = rest2, l
		} else {
			line = col
		}
	}
	return file, line
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// isNumber reports whether s is a non-empty run of decimal digits.
func isNumber(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// attemptView is the last attempt with linked problems.
type attemptView struct {
	*pipeline.Attempt
	Problems []problemRow
}

// attemptView links a's problems to the files on the Git host.
func (c *Console) attemptView(a *pipeline.Attempt) attemptView {
	av := attemptView{Attempt: a}
	for _, p := range a.Problems {
		av.Problems = append(av.Problems, problemRow{p, c.fileLink(a.Revision.Commit, p.Pos)})
	}
	return av
}

func (c *Console) revisionsPage(w http.ResponseWriter, r *http.Request) {
	if !viewerOf(r).SeesAll() {
		c.forbidden(w, r, "reading the revisions")
		return
	}
	st := c.cfg.Pipeline.Status()
	revs, err := c.cfg.Store.Revisions(r.Context(), 100)
	if err != nil {
		c.problem(w, r, http.StatusInternalServerError, "Revisions unavailable", err.Error(), "Check the server's database.")
		return
	}
	refused, err := c.cfg.Pipeline.Refused(r.Context(), 50)
	if err != nil {
		c.problem(w, r, http.StatusInternalServerError, "Revisions unavailable", err.Error(), "Check the server's database.")
		return
	}
	d := map[string]any{"Status": st, "Applied": revs}
	if a := st.Attempted; a != nil {
		d["Attempt"] = c.attemptView(a)
	}
	var rv []attemptView
	for i := range refused {
		rv = append(rv, c.attemptView(&refused[i]))
	}
	d["Refused"] = rv
	if st.Source.Err != nil {
		d["SourceErr"] = st.Source.Err.Error()
	}
	c.render(w, r, http.StatusOK, "revisions.html", d)
}

func (c *Console) revisionPage(w http.ResponseWriter, r *http.Request) {
	if !viewerOf(r).SeesAll() {
		c.forbidden(w, r, "reading the revisions")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		c.problem(w, r, http.StatusBadRequest, "No such revision", fmt.Sprintf("%q is not a revision ID.", r.PathValue("id")), "Pick one on the revisions page.")
		return
	}
	raw, err := c.cfg.Store.RevisionPlan(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		c.problem(w, r, http.StatusNotFound, "No such revision", err.Error(), "Pick one on the revisions page.")
		return
	}
	if err != nil {
		c.problem(w, r, http.StatusInternalServerError, "Plan unavailable", err.Error(), "Check the server's database.")
		return
	}
	var rev *store.Revision
	if revs, err := c.cfg.Store.Revisions(r.Context(), 0); err == nil {
		for i := range revs {
			if revs[i].ID == id {
				rev = &revs[i]
			}
		}
	}
	c.render(w, r, http.StatusOK, "revision.html", map[string]any{"Rev": rev, "ID": id, "Text": planText(raw), "JSON": indent(raw)})
}

// planText renders a recorded plan (docs/plan.md's JSON, secrets masked
// already) as `tailplane plan` prints it.
func planText(raw []byte) string {
	var doc struct {
		Changes []reconcile.Change `json:"changes"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "(the recorded plan is not readable: " + err.Error() + ")"
	}
	var b bytes.Buffer
	(&reconcile.Plan{Changes: doc.Changes}).WriteText(&b)
	return b.String()
}

func indent(raw []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}
