package notify

import (
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

// Client speaks the client side of the protocol over a stream (the stdio
// of an ssh session, a telehash channel...). Any number of watches share
// it.
type Client struct {
	wmu sync.Mutex
	w   io.Writer

	lastRecv atomic.Int64 // unix nanoseconds

	mu   sync.Mutex
	subs map[string]*Sub
	err  error
	done chan struct{}
}

// Event is what a Sub delivers: the refs once the watch is ready
// (Changes nil), then after each batch of changes; or Err when the watch
// ended.
type Event struct {
	watch.Update
	Err error
}

// Sub is one watched repository.
type Sub struct {
	id     string
	events chan Event
	refs   watch.Refs // being built (before READY) or current
	ready  bool
	batch  watch.Refs // refs with the current batch applied
}

// Events delivers the watch's events; it is closed when the watch or the
// connection ends.
func (s *Sub) Events() <-chan Event { return s.events }

// NewClient reads r up to the banner, skipping noise, and starts reading
// the stream. Noise is returned with ErrNoBanner to help diagnose.
func NewClient(r io.Reader, w io.Writer) (*Client, error) {
	pr := protocol.NewReader(r)
	var noise []string
	size := 0
	for {
		line, err := pr.ReadLine()
		if err != nil && !errors.Is(err, protocol.ErrLineTooLong) {
			return nil, fmt.Errorf("%w before the stream ended (%w); it said: %q", ErrNoBanner, err, strings.Join(noise, " | "))
		}
		if v, ok := ParseBanner(line); ok {
			if v != Version {
				return nil, fmt.Errorf("notify-changes speaks version %d, this daemon %d", v, Version)
			}
			break
		}
		size += len(line)
		if noise = append(noise, line); len(noise) > MaxNoiseLines || size > MaxNoiseBytes {
			return nil, fmt.Errorf("%w within %d lines", ErrNoBanner, MaxNoiseLines)
		}
		if len(noise) > 5 {
			noise = noise[1:]
		}
	}
	c := &Client{w: w, subs: map[string]*Sub{}, done: make(chan struct{})}
	c.touch()
	go c.read(pr)
	return c, nil
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
	s := &Sub{id: id, events: make(chan Event, 16), refs: watch.Refs{}}
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
		c.drop(id)
		return nil, err
	}
	return s, nil
}

// Unwatch stops a watch; its Events channel is closed.
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
	case Ref, Ready, Change, Delete, End, Error:
	default:
		return fmt.Errorf("notify: the server sent %s", m.Kind)
	}
	if m.ID == "*" {
		if m.Kind == Error {
			return fmt.Errorf("notify: the server says: %s", m.Text)
		}
		return fmt.Errorf("notify: %s for no watch", m.Kind)
	}
	c.mu.Lock()
	s, ok := c.subs[m.ID]
	c.mu.Unlock()
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
		s.ready, s.batch = true, s.refs.Clone()
		c.deliver(s, Event{Update: watch.Update{First: true, Refs: s.refs.Clone()}})
	case Change, Delete:
		if !s.ready {
			return fmt.Errorf("notify: %s for %s before READY", m.Kind, m.ID)
		}
		if m.Kind == Change {
			s.batch[m.Ref] = m.SHA
		} else {
			delete(s.batch, m.Ref)
		}
	case End:
		if !s.ready {
			return fmt.Errorf("notify: END for %s before READY", m.ID)
		}
		changes := watch.Diff(s.refs, s.batch)
		s.refs, s.batch = s.batch, s.batch.Clone()
		if len(changes) > 0 {
			c.deliver(s, Event{Update: watch.Update{Refs: s.refs.Clone(), Changes: changes}})
		}
	case Error:
		c.mu.Lock()
		if _, still := c.subs[m.ID]; still {
			delete(c.subs, m.ID)
			s.events <- Event{Err: errors.New(m.Text)}
			close(s.events)
		}
		c.mu.Unlock()
	}
	return nil
}

// deliver hands an event to the Sub's consumer, waiting while its buffer
// is full; one slot is always kept free for the final error.
func (c *Client) deliver(s *Sub, e Event) {
	for {
		c.mu.Lock()
		if _, ok := c.subs[s.id]; !ok {
			c.mu.Unlock()
			return
		}
		if len(s.events) < cap(s.events)-1 {
			s.events <- e
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}
