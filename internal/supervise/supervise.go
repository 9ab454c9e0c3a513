// Package supervise runs the program's long-lived parts. Each part is a
// Service (Serve(ctx) error); the Supervisor starts it, restarts it with
// backoff when it fails, and stops it by cancelling its context and
// waiting for Serve to return. One part's failure never stops another.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/backoff"
)

// A Service runs until ctx ends (then it returns nil or ctx's error) or
// it fails (an error: it is restarted). Returning nil while ctx is live
// means the service is done and is not restarted.
type Service interface {
	Serve(ctx context.Context) error
}

// Func adapts a function to a Service.
type Func func(ctx context.Context) error

// Serve calls f.
func (f Func) Serve(ctx context.Context) error { return f(ctx) }

// Options configure a Supervisor.
type Options struct {
	Logger *slog.Logger
	// Min and Max bound the restart delay (defaults 1 s and 1 min); a
	// service that ran StableAfter (default 1 min) restarts at Min again.
	Min, Max, StableAfter time.Duration
}

// Supervisor runs services under one parent context.
type Supervisor struct {
	opts Options

	mu       sync.Mutex
	ctx      context.Context // set by Serve; nil before
	services map[string]*running
	pending  map[string]Service // added before Serve
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a supervisor; call Serve to run it.
func New(opts Options) *Supervisor {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Min <= 0 {
		opts.Min = time.Second
	}
	if opts.Max <= 0 {
		opts.Max = time.Minute
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = time.Minute
	}
	return &Supervisor{opts: opts, services: map[string]*running{}, pending: map[string]Service{}}
}

// Serve runs the services until ctx ends, then stops them all and
// returns once every one has returned.
func (s *Supervisor) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("supervise: Serve called twice")
	}
	s.ctx = ctx
	for name, svc := range s.pending {
		s.startLocked(name, svc)
	}
	s.pending = nil
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	all := s.services
	s.services = map[string]*running{}
	s.mu.Unlock()
	for _, r := range all {
		r.cancel()
	}
	for _, r := range all {
		<-r.done
	}
	return nil
}

// Add runs svc under name, replacing (stopping first) a service of the
// same name.
func (s *Supervisor) Add(name string, svc Service) {
	s.Remove(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		s.pending[name] = svc
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	s.startLocked(name, svc)
}

// Remove stops the named service and waits until it has returned. It is
// a no-op for an unknown name.
func (s *Supervisor) Remove(name string) {
	s.mu.Lock()
	r := s.services[name]
	delete(s.services, name)
	if s.pending != nil {
		delete(s.pending, name)
	}
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (s *Supervisor) startLocked(name string, svc Service) {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &running{cancel: cancel, done: make(chan struct{})}
	s.services[name] = r
	go func() {
		defer close(r.done)
		defer cancel()
		s.run(ctx, name, svc)
	}()
}

// run serves svc until ctx ends, restarting it with backoff.
func (s *Supervisor) run(ctx context.Context, name string, svc Service) {
	b := backoff.Backoff{Min: s.opts.Min, Max: s.opts.Max, StableAfter: s.opts.StableAfter}
	log := s.opts.Logger.With("service", name)
	for {
		started := time.Now()
		err := serveOnce(ctx, svc)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			log.Debug("service done")
			return
		}
		b.Done(time.Since(started))
		wait := b.Next()
		log.Warn("service failed; restarting", "in", wait.Round(time.Millisecond), "err", err)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// serveOnce runs svc once, turning a panic into an error so that one
// part's bug does not take the program down.
func serveOnce(ctx context.Context, svc Service) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return svc.Serve(ctx)
}
