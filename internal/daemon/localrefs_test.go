package daemon

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Runners asking for the local refs while a listing runs share the next
// one: 51 runners, 2 listings; none gets a listing started before it
// asked.
func TestLocalRefsShared(t *testing.T) {
	var reads atomic.Int32
	release := make(chan struct{})
	started := make(chan int, 10)
	l := &localRefs{read: func(context.Context) (watch.Refs, error) {
		n := int(reads.Add(1))
		started <- n
		<-release
		return watch.Refs{"refs/heads/n": fmt.Sprint(n)}, nil
	}}
	ctx := context.Background()
	first := make(chan watch.Refs, 1)
	go func() {
		refs, _ := l.get(ctx)
		first <- refs
	}()
	if n := <-started; n != 1 {
		t.Fatalf("listing %d started first", n)
	}
	// 50 more ask while the first listing runs: they wait for the next.
	var wg sync.WaitGroup
	got := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refs, err := l.get(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- refs["refs/heads/n"]
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	release <- struct{}{}             // the first listing ends; the second starts
	if refs := <-first; refs["refs/heads/n"] != "1" {
		t.Errorf("the first caller got listing %s", refs["refs/heads/n"])
	}
	if n := <-started; n != 2 {
		t.Fatalf("listing %d started second", n)
	}
	release <- struct{}{}
	wg.Wait()
	close(got)
	for n := range got {
		if n != "2" {
			t.Errorf("a caller that asked during listing 1 got listing %s", n)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d listings for 51 callers, want 2", n)
	}
	// A caller whose context ends stops waiting; the listing goes on.
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := l.get(ctx2); done <- err }()
	<-started
	cancel()
	if err := <-done; err == nil {
		t.Error("no error after the context ended")
	}
	release <- struct{}{}
}
