package telehash

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// subscribeAddrChanges opens a route netlink socket subscribed to the
// kernel's address and link events (IPv4 and IPv6 addresses, links
// going up or down) in this process's network namespace. The channel
// gets a value (coalesced) after each datagram that holds such an event,
// or after the kernel dropped events; it is closed when reading fails.
// stop closes the socket; wg counts the reading goroutine.
func subscribeAddrChanges(wg *sync.WaitGroup, log *slog.Logger) (<-chan struct{}, func(), error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_LINK}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A non-blocking descriptor goes to the runtime's poller: reads park
	// the goroutine, and Close wakes it.
	f := os.NewFile(uintptr(fd), "netlink-route")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	ch := make(chan struct{}, 1)
	var closing sync.Once
	stopped := make(chan struct{})
	stop := func() {
		closing.Do(func() {
			close(stopped)
			f.Close()
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		buf := make([]byte, 64<<10)
		for {
			n, fromKernel, err := recvNetlink(rc, buf)
			switch {
			case errors.Is(err, unix.ENOBUFS): // the kernel dropped events: something changed
			case err != nil:
				select {
				case <-stopped:
				default:
					log.Warn("telehash: netlink subscription to address changes failed; polling instead", "every", ifacePoll, "err", err)
				}
				return
			case !fromKernel: // only the kernel sends to these groups
				continue
			default:
				evs, perr := parseNetlink(buf[:n])
				if len(evs) == 0 && perr == nil {
					continue
				}
				log.Debug("telehash: netlink", "events", evs, "err", perr)
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, stop, nil
}

// recvNetlink reads one datagram, parking until one comes.
func recvNetlink(rc syscall.RawConn, buf []byte) (n int, fromKernel bool, err error) {
	rerr := rc.Read(func(fd uintptr) bool {
		var from unix.Sockaddr
		n, from, err = unix.Recvfrom(int(fd), buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			return false
		}
		if sa, ok := from.(*unix.SockaddrNetlink); ok && sa.Pid == 0 {
			fromKernel = true
		}
		return true
	})
	if rerr != nil { // closed
		err = rerr
	}
	return n, fromKernel, err
}
