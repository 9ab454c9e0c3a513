package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// MaxNoise caps what is skipped before the banner (a remote shell's
// greetings): more lines or bytes than this and the stream is refused.
const (
	MaxNoiseLines = 1000
	MaxNoiseBytes = 256 << 10
)

// ErrNoBanner is wrapped when the stream ends or overflows before the
// banner: the far side is not a notify server.
var ErrNoBanner = errors.New("no notify-changes banner")

// DefaultBannerTimeout is how long NewClient waits for the banner unless
// its context ends sooner.
const DefaultBannerTimeout = 30 * time.Second

// ErrBannerTimeout is wrapped when no banner came within the timeout.
var ErrBannerTimeout = errors.New("no notify-changes banner in time")

// Client speaks the client side of the protocol over a stream (the stdio
// of an ssh session, a telehash channel...). Any number of watches share
// it.
type Client struct {
	wmu sync.Mutex
	w   io.Writer

	lastRecv atomic.Int64 // unix nanoseconds

	mu   sync.Mutex
	subs map[string]*Sub
	// gone counts, per id, the watches unwatched whose closing ERROR
	// line has not arrived yet: lines for the id up to it are about an
	// old watch, not about a new one under the same id.
	gone map[string]int
	err  error
	done chan struct{}

	// caps receives the answer to CAPS, while one is awaited.
	caps     chan string
	capsDone bool
	streams  streams
	nextSID  atomic.Int64
	mux      atomic.Bool
}

// Event is what a Sub delivers: the refs once the watch is ready (First),
// then the refs after changes, with the changes since the event received
// before; or Err when the watch ended.
type Event struct {
	watch.Update
	Err error
}

// Sub is one watched repository. Its events go through a one-slot
// mailbox: a consumer that does not keep up never holds up the stream
// (nor the other watches on it); when it reads, it gets the latest refs,
// with the changes since what it took last merged into one event.
type Sub struct {
	id string
	// events holds at most one refs event, plus room for the final
	// error. Only the client's reader sends, under Client.mu.
	events chan Event
	refs   watch.Refs // being built (before READY) or current
	ready  bool
	put    watch.Refs // the refs of the last event put in the mailbox
	taken  watch.Refs // the refs of the last event the consumer took
}

// Events delivers the watch's events; it is closed when the watch or the
// connection ends.
func (s *Sub) Events() <-chan Event { return s.events }

// NewClient reads r up to the banner, skipping noise, and starts reading
// the stream. Noise is returned with ErrNoBanner to help diagnose. It
// gives up when ctx ends or after DefaultBannerTimeout, whichever comes
// first; the caller then closes the stream, which ends the read still
// waiting on r. ctx bounds only the wait for the banner.
func NewClient(ctx context.Context, r io.Reader, w io.Writer) (*Client, error) {
	return newClient(ctx, r, w, DefaultBannerTimeout)
}

func newClient(ctx context.Context, r io.Reader, w io.Writer, timeout time.Duration) (*Client, error) {
	pr := protocol.NewReader(r)
	banner := make(chan error, 1)
	go func() { banner <- readBanner(pr) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-banner:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("notify: waiting for the banner: %w", ctx.Err())
	case <-t.C:
		return nil, fmt.Errorf("%w (%s)", ErrBannerTimeout, timeout)
	}
	c := &Client{w: w, subs: map[string]*Sub{}, gone: map[string]int{}, done: make(chan struct{})}
	c.touch()
	go c.read(pr)
	return c, nil
}

func readBanner(pr *protocol.Reader) error {
	var noise []string
	size := 0
	for {
		line, err := pr.ReadLine()
		if err != nil && !errors.Is(err, protocol.ErrLineTooLong) {
			return fmt.Errorf("%w before the stream ended (%w); it said: %q", ErrNoBanner, err, strings.Join(noise, " | "))
		}
		if v, ok := ParseBanner(line); ok {
			if v != Version {
				return fmt.Errorf("notify-changes speaks version %d, this daemon %d", v, Version)
			}
			return nil
		}
		size += len(line)
		if noise = append(noise, line); len(noise) > MaxNoiseLines || size > MaxNoiseBytes {
			return fmt.Errorf("%w within %d lines", ErrNoBanner, MaxNoiseLines)
		}
		if len(noise) > 5 {
			noise = noise[1:]
		}
	}
}

func (c *Client) touch() { c.lastRecv.Store(time.Now().UnixNano()) }

// LastReceived is when the last line arrived.
func (c *Client) LastReceived() time.Time { return time.Unix(0, c.lastRecv.Load()) }

// Done is closed when the stream ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the stream ended, or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) send(m Msg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := io.WriteString(c.w, m.String()+"\n"); err != nil {
		return fmt.Errorf("notify: write %s: %w", m.Kind, err)
	}
	return nil
}

// Ping asks for a PONG; LastReceived shows whether the server is alive.
func (c *Client) Ping() error { return c.send(Msg{Kind: Ping}) }

// Watch starts watching the repository at path on the far side, under id.
func (c *Client) Watch(id, path string) (*Sub, error) {
	if !validID(id) {
		return nil, fmt.Errorf("notify: bad watch id %q", id)
	}
	if path == "" || strings.ContainsAny(path, "\r\n\x00") {
		return nil, fmt.Errorf("notify: bad path %q", path)
	}
	s := &Sub{id: id, events: make(chan Event, 2), refs: watch.Refs{}}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	if _, dup := c.subs[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("notify: id %q is watched already", id)
	}
	c.subs[id] = s
	c.mu.Unlock()
	if err := c.send(Msg{Kind: Watch, ID: id, Path: path}); err != nil {
		c.mu.Lock()
		if c.subs[id] == s { // not ended by the reader meanwhile
			delete(c.subs, id)
			close(s.events)
		}
		c.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// Unwatch stops a watch; its Events channel is closed. The id may be
// watched again at once: lines still arriving about the old watch are
// told apart by the server's "ERROR <id>" line that ends it.
func (c *Client) Unwatch(id string) {
	if c.drop(id) {
		_ = c.send(Msg{Kind: Unwatch, ID: id})
	}
}

func (c *Client) drop(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.subs[id]
	if ok {
		delete(c.subs, id)
		close(s.events)
		c.gone[id]++
	}
	return ok
}

// read dispatches lines until the stream ends. A malformed line ends the
// whole stream with an error: the daemon reconnects and reconciles, so
// nothing is lost, and a garbled stream is never trusted further.
func (c *Client) read(pr *protocol.Reader) {
	var err error
	for err == nil {
		var line string
		line, err = pr.ReadLine()
		if err != nil {
			if errors.Is(err, protocol.ErrLineTooLong) {
				err = fmt.Errorf("notify: %w", err)
			}
			break
		}
		c.touch()
		var m Msg
		if m, err = Parse(line); err != nil {
			err = fmt.Errorf("notify: from the server: %w", err)
			break
		}
		err = c.dispatch(m)
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("notify: the server closed the stream")
	}
	c.streams.endAll(err)
	c.mu.Lock()
	c.err = err
	for id, s := range c.subs {
		s.events <- Event{Err: err} // capacity is left: see deliver
		close(s.events)
		delete(c.subs, id)
	}
	c.mu.Unlock()
	close(c.done)
}

func (c *Client) dispatch(m Msg) error {
	switch m.Kind {
	case Pong:
		return nil
	case Data, EOF:
		if !c.mux.Load() {
			return fmt.Errorf("notify: the server sent %s without mux", m.Kind)
		}
		c.streams.deliver(m)
		return nil
	case Caps:
		return c.gotCaps(m.Text, false)
	case Ref, Ready, Change, Delete, End, Error:
	default:
		return fmt.Errorf("notify: the server sent %s", m.Kind)
	}
	if m.ID == "*" {
		if m.Kind == Error && c.awaitingCaps() {
			return c.gotCaps("", true) // a server without CAPS
		}
		if m.Kind == Error {
			return fmt.Errorf("notify: the server says: %s", m.Text)
		}
		return fmt.Errorf("notify: %s for no watch", m.Kind)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.gone[m.ID]; n > 0 {
		// About a watch we unwatched; its ERROR line is its last.
		if m.Kind == Error {
			if n == 1 {
				delete(c.gone, m.ID)
			} else {
				c.gone[m.ID] = n - 1
			}
		}
		return nil
	}
	s, ok := c.subs[m.ID]
	if !ok {
		return nil // unwatched meanwhile
	}
	switch m.Kind {
	case Ref:
		if s.ready {
			return fmt.Errorf("notify: REF for %s after READY", m.ID)
		}
		s.refs[m.Ref] = m.SHA
	case Ready:
		if s.ready {
			return fmt.Errorf("notify: second READY for %s", m.ID)
		}
		s.ready = true
		c.deliver(s, true)
	case Change, Delete:
		if !s.ready {
			return fmt.Errorf("notify: %s for %s before READY", m.Kind, m.ID)
		}
		if m.Kind == Change {
			s.refs[m.Ref] = m.SHA
		} else {
			delete(s.refs, m.Ref)
		}
	case End:
		if !s.ready {
			return fmt.Errorf("notify: END for %s before READY", m.ID)
		}
		c.deliver(s, false)
	case Error:
		delete(c.subs, m.ID)
		s.events <- Event{Err: errors.New(m.Text)} // room is left: see deliver
		close(s.events)
	}
	return nil
}

// deliver puts the current refs in s's mailbox, with the changes since
// what the consumer took last: an event it has not taken yet is replaced
// by one merging both. It never waits, and keeps the mailbox's second
// slot free for the final error. c.mu is held.
func (c *Client) deliver(s *Sub, first bool) {
	select {
	case old := <-s.events: // not taken: merge into the new one
		first = first || old.First
	default: // the consumer took what was put, if anything
		s.taken = s.put
	}
	e := Event{Update: watch.Update{First: first, Refs: s.refs.Clone()}}
	if !first {
		if e.Changes = watch.Diff(s.taken, s.refs); len(e.Changes) == 0 {
			s.put = s.taken // nothing new since the consumer last took
			return
		}
	}
	s.put = s.refs.Clone()
	s.events <- e
}
