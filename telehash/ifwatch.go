package telehash

import (
	"net"
	"slices"
	"sync/atomic"
	"time"
)

// The interface watcher: a mesh bound to an unspecified address calls
// Roam when the machine's addresses change (a laptop that joined another
// network). On Linux it hears of a change at once from the kernel (a
// route netlink subscription to address and link events,
// ifwatch_linux.go) and otherwise does nothing; elsewhere, or when the
// subscription fails, it reads the addresses every ifacePoll. Either
// way the addresses are read again and compared, and Roam is called
// only when they changed.

// ifacePoll is how often the addresses are read when no netlink
// subscription tells of changes. A move the watcher misses meanwhile
// is still found by the keepalives (roam.go: an unanswered keepalive
// starts probing).
var ifacePoll = 30 * time.Second

// ifaceSettle is how long the watcher lets a burst of events (a new
// DHCP lease brings an address, routes and a link change) end before
// it reads the addresses.
const ifaceSettle = 100 * time.Millisecond

// ifaceWatch counts the watcher's work.
type ifaceWatch struct {
	subscribed atomic.Bool   // the netlink subscription is open
	polls      atomic.Uint64 // address reads on the poll timer
	events     atomic.Uint64 // address reads after an event
	changes    atomic.Uint64 // reads that found the addresses changed
}

// startInterfaceWatch starts the watcher with the platform's events, or
// polling without them.
func (m *Mesh) startInterfaceWatch() {
	events, stop, err := subscribeAddrChanges(&m.wg, m.log)
	if err != nil {
		m.log.Debug("telehash: polling the local addresses", "every", ifacePoll, "err", err)
	} else {
		m.ifw.subscribed.Store(true)
	}
	m.wg.Add(1)
	go func() {
		if stop != nil {
			defer stop()
		}
		m.watchInterfaces(net.InterfaceAddrs, events, ifacePoll)
	}()
}

// watchInterfaces calls Roam when the set of addresses addrs returns
// changes, reading it after each event and, while events is nil or
// once it is closed, every poll, until the mesh closes.
func (m *Mesh) watchInterfaces(addrs func() ([]net.Addr, error), events <-chan struct{}, poll time.Duration) {
	defer m.wg.Done()
	last := addrSet(addrs())
	var ticker *time.Ticker
	var tick <-chan time.Time
	startPolling := func() {
		ticker = time.NewTicker(poll)
		tick = ticker.C
	}
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	if events == nil {
		startPolling()
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-tick:
			m.ifw.polls.Add(1)
		case _, ok := <-events:
			if !ok {
				events = nil
				m.ifw.subscribed.Store(false)
				startPolling()
				continue
			}
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(ifaceSettle):
			}
			select { // the events of the burst are read with it
			case <-events:
			default:
			}
			m.ifw.events.Add(1)
		}
		cur := addrSet(addrs())
		if cur == nil || slices.Equal(cur, last) {
			continue
		}
		m.log.Debug("telehash: local addresses changed", "from", last, "to", cur)
		m.ifw.changes.Add(1)
		last = cur
		m.Roam()
	}
}
