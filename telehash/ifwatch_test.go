package telehash

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeAddrs is a settable list of interface addresses.
type fakeAddrs struct {
	mu sync.Mutex
	as []net.Addr
}

func (f *fakeAddrs) set(ip net.IP) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.as = []net.Addr{&net.IPNet{IP: ip, Mask: net.CIDRMask(24, 32)}}
}

func (f *fakeAddrs) get() ([]net.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.as, nil
}

// With events, the watcher reads the addresses on each event and never
// polls: a change is acted on though the poll would come in an hour.
func TestInterfaceWatcherEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newTestMesh(t, "ifw-a", nodeOpts())
	bo := nodeOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "ifw-b", bo)
	linkMeshes(t, a, b)
	release, _ := a.Keep(b.Hashname())
	defer release()
	var addrs fakeAddrs
	addrs.set(net.IPv4(192, 0, 2, 1))
	events := make(chan struct{}, 1)
	a.wg.Add(1)
	go a.watchInterfaces(addrs.get, events, time.Hour)

	events <- struct{}{} // an event with no change: no Roam
	waitUntil(t, ctx, "the event is read", func() bool { return a.ifw.events.Load() == 1 })
	sent := a.Stats().HandshakesSent
	addrs.set(net.IPv4(198, 51, 100, 7))
	events <- struct{}{}
	waitUntil(t, ctx, "a handshakes b after the change", func() bool { return a.Stats().HandshakesSent > sent })
	if n, p := a.ifw.changes.Load(), a.ifw.polls.Load(); n != 1 || p != 0 {
		t.Fatalf("%d changes seen, %d polls; want 1 change and no poll", n, p)
	}

}

// Once the events end (the subscription failed), the watcher polls.
func TestInterfaceWatcherFallsBackToPolling(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newTestMesh(t, "ifw-poll", nodeOpts())
	var addrs fakeAddrs
	addrs.set(net.IPv4(192, 0, 2, 1))
	events := make(chan struct{})
	a.wg.Add(1)
	go a.watchInterfaces(addrs.get, events, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if p := a.ifw.polls.Load(); p != 0 {
		t.Fatalf("%d polls while events come", p)
	}
	close(events)
	addrs.set(net.IPv4(198, 51, 100, 7))
	waitUntil(t, ctx, "the change seen by a poll", func() bool { return a.ifw.changes.Load() == 1 })
	if a.ifw.polls.Load() == 0 {
		t.Fatal("no poll counted")
	}
}
