package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNoMux is returned by Open when the server does not offer mux1.
var ErrNoMux = errors.New("notify: the server offers no streams (mux1)")

// Negotiate asks the server for the capabilities this client knows
// (mux1) and returns those both know. Call it once, right after
// NewClient and before anything else is sent: a server older than CAPS
// answers with "ERROR * ...", which is taken for "none" only then.
func (c *Client) Negotiate(ctx context.Context) ([]string, error) {
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.caps != nil || c.err != nil {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = errors.New("notify: CAPS already asked")
		}
		return nil, err
	}
	c.caps = ch
	c.mu.Unlock()
	if err := c.send(Msg{Kind: Caps, Text: CapMux}); err != nil {
		return nil, err
	}
	select {
	case text := <-ch:
		var caps []string
		if text != "" {
			caps = strings.Split(text, " ")
		}
		return caps, nil
	case <-c.done:
		return nil, c.Err()
	case <-ctx.Done():
		return nil, fmt.Errorf("notify: waiting for CAPS: %w", ctx.Err())
	}
}

func (c *Client) awaitingCaps() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caps != nil && !c.capsDone
}

// gotCaps hands the answer to Negotiate. old: the server does not know
// CAPS.
func (c *Client) gotCaps(text string, old bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.caps == nil || c.capsDone {
		return errors.New("notify: CAPS from the server unasked")
	}
	c.capsDone = true
	// Only what was asked for counts.
	var both []string
	if !old && text != "" {
		for _, cp := range strings.Split(text, " ") {
			if cp == CapMux {
				both = append(both, cp)
				c.mux.Store(true) // before the next line is read
			}
		}
	}
	c.caps <- strings.Join(both, " ")
	return nil
}

// Mux reports whether the server offers streams (after Negotiate).
func (c *Client) Mux() bool { return c.mux.Load() }

// Open opens a stream on which the server runs helper.Serve: write a
// helper REQUEST frame first.
func (c *Client) Open() (*Stream, error) {
	if !c.mux.Load() {
		return nil, ErrNoMux
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	id := "s" + strconv.FormatInt(c.nextSID.Add(1), 10)
	st := newStream(id, c.send, nil)
	st.drop = func() { c.streams.remove(st) }
	if err := c.streams.add(st, 0); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if err := c.send(Msg{Kind: Open, ID: id}); err != nil {
		c.streams.remove(st)
		return nil, err
	}
	// The connection may have ended between Err and add: the reader
	// ended every stream it knew then, and this one was not among them.
	select {
	case <-c.done:
		c.streams.remove(st)
		return nil, c.Err()
	default:
	}
	return st, nil
}
