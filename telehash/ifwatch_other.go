//go:build !linux

package telehash

import (
	"errors"
	"log/slog"
	"sync"
)

// subscribeAddrChanges: no address events here; the watcher polls.
func subscribeAddrChanges(*sync.WaitGroup, *slog.Logger) (<-chan struct{}, func(), error) {
	return nil, nil, errors.New("no address change events on this platform")
}
