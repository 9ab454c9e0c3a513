package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/redact"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// States of a remote, as `git-remote-daemon status` shows them.
const (
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateDisconnected = "disconnected"
	StatePaused       = "paused"
	StateNotWatched   = "not watched"
)

// RemoteStatus is what the daemon knows of one remote.
type RemoteStatus struct {
	Name          string    `json:"name"`
	URL           string    `json:"url"`
	Transport     string    `json:"transport"`
	State         string    `json:"state"`
	LastChange    time.Time `json:"last_change,omitzero"`
	LastChangeTo  []string  `json:"last_change_to,omitempty"`
	LastStatus    string    `json:"last_status,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// Report is the daemon's status file.
type Report struct {
	PID     int            `json:"pid"`
	Started time.Time      `json:"started"`
	Paused  bool           `json:"paused"`
	Remotes []RemoteStatus `json:"remotes"`
	// TH is the telehash node's routing and paths, when this daemon
	// hosts its identity's node (live status only).
	TH *THStatus `json:"th,omitempty"`
}

// book keeps the status of every remote and writes it to a file (for
// `git-remote-daemon status`) after each change.
//
// A change is written at once unless the file was written less than
// statusEvery ago; then it is written statusEvery after that write, with
// every change made meanwhile: a thousand remotes connecting at once
// write the file ten times a second, not a thousand times (each write
// holds every remote). `git-remote-daemon status` asks the running
// daemon first; the file is for when it cannot answer.
type book struct {
	mu      sync.Mutex
	path    string // "" = keep in memory only
	report  Report
	remotes map[string]*RemoteStatus

	dirty     bool        // changed since the last write
	lastWrite time.Time   // of the file
	timer     *time.Timer // the write due, if any
}

// statusEvery is the least time between two writes of the status file.
const statusEvery = 100 * time.Millisecond

func newBook(path string) *book {
	return &book{path: path, remotes: map[string]*RemoteStatus{},
		report: Report{PID: os.Getpid(), Started: time.Now().UTC()}}
}

// update changes one remote's entry (creating it) and saves.
func (b *book) update(name string, fn func(*RemoteStatus)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rs, ok := b.remotes[name]
	if !ok {
		rs = &RemoteStatus{Name: name, State: StateConnecting}
		b.remotes[name] = rs
	}
	fn(rs)
	b.saveLocked()
}

func (b *book) remove(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.remotes, name)
	b.saveLocked()
}

func (b *book) setPaused(p bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report.Paused = p
	b.saveLocked()
}

// apply records an emitted message.
func (b *book) apply(m protocol.Message) {
	now := time.Now().UTC()
	switch m := m.(type) {
	case protocol.Connected:
		b.update(m.Remote, func(r *RemoteStatus) { r.State = StateConnected })
	case protocol.Disconnected:
		b.update(m.Remote, func(r *RemoteStatus) {
			if r.State != StatePaused {
				r.State = StateDisconnected
			}
		})
	case protocol.Changed:
		b.update(m.Remote, func(r *RemoteStatus) { r.LastChange, r.LastChangeTo = now, m.SHAs })
	case protocol.Status:
		b.amend(m.Remote, func(r *RemoteStatus) { r.LastStatus = m.Text })
	case protocol.Error:
		b.amend(m.Remote, func(r *RemoteStatus) { r.LastError, r.LastErrorTime = m.Text, now })
	}
}

// amend is update for a STATUS or ERROR: it creates no entry for a name
// that is no remote the daemon runs (`PUSH nosuch`), but for `*`.
func (b *book) amend(name string, fn func(*RemoteStatus)) {
	b.mu.Lock()
	_, ok := b.remotes[name]
	b.mu.Unlock()
	if ok || name == protocol.Daemon {
		b.update(name, fn)
	}
}

func (b *book) snapshot() Report {
	rep := b.report
	rep.Remotes = nil
	for _, r := range b.remotes {
		c := *r
		rep.Remotes = append(rep.Remotes, c)
	}
	sort.Slice(rep.Remotes, func(i, j int) bool { return rep.Remotes[i].Name < rep.Remotes[j].Name })
	return rep
}

func (b *book) saveLocked() {
	if b.path == "" {
		return
	}
	b.dirty = true
	if b.timer != nil {
		return // written when it fires
	}
	if wait := statusEvery - time.Since(b.lastWrite); wait > 0 {
		b.timer = time.AfterFunc(wait, b.flush)
		return
	}
	b.writeLocked()
}

// flush writes the file now if it changed since it was last written.
func (b *book) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if b.dirty && b.path != "" {
		b.writeLocked()
	}
}

func (b *book) writeLocked() {
	b.dirty, b.lastWrite = false, time.Now()
	data, err := json.MarshalIndent(b.snapshot(), "", "  ")
	if err == nil {
		err = writeFileAtomic(b.path, append(data, '\n'), 0o600) // the user's only, credentials masked or not
	}
	_ = err // the status file is informational; the log has the events
}

// ReadReport reads a status file.
func ReadReport(path string) (Report, error) {
	var r Report
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Print writes the report as a table: remote, transport, state, last
// change, last error.
func (r Report) Print(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REMOTE\tTRANSPORT\tSTATE\tLAST CHANGE\tLAST ERROR")
	for _, rs := range r.Remotes {
		change := "-"
		if !rs.LastChange.IsZero() {
			change = ago(now, rs.LastChange) + " " + short(rs.LastChangeTo)
		}
		errText := "-"
		if rs.LastError != "" {
			errText = ago(now, rs.LastErrorTime) + " " + rs.LastError
		}
		state := rs.State
		if r.Paused && state != StateNotWatched {
			state = StatePaused
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rs.Name, rs.Transport, state, change, errText)
	}
	return tw.Flush()
}

// redactURL hides the credentials of a URL (see redact.String):
// https://user:secret@host/ shows as https://user:xxxxx@host/, and a
// ?token=... as ?token=xxxxx.
func redactURL(u string) string { return redact.String(u) }

// redactMessage hides the credentials in a message's text: git's
// errors quote the remote's URL.
func redactMessage(m protocol.Message) protocol.Message {
	switch v := m.(type) {
	case protocol.Status:
		v.Text = redact.String(v.Text)
		return v
	case protocol.Error:
		v.Text = redact.String(v.Text)
		return v
	}
	return m
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func short(shas []string) string {
	var s []string
	for _, sha := range shas {
		if len(sha) > 10 {
			sha = sha[:10]
		}
		s = append(s, sha)
	}
	return "(" + strings.Join(s, " ") + ")"
}
