package testkit

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Echo writes back whatever every connection ln accepts sends, until ln is
// closed; it closes ln when the test ends.
func Echo(t testing.TB, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// Talk is one TCP connection held open to an Echo server, exchanging a
// numbered message every interval, for tests that traffic keeps flowing
// while something else (a control server) goes away.
type Talk struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex // guards the fields below
	rounds int        // answered exchanges
	err    error      // the first failure; the talk stops at it
}

// talkRoundLimit is how long one exchange may take before the talk counts
// as stopped: far above a round trip, well below a human noticing.
const talkRoundLimit = 10 * time.Second

// StartTalk dials addr with dial and exchanges a message every 100 ms until
// Stop or ctx ends.
func StartTalk(ctx context.Context, addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*Talk, error) {
	dctx, cancel := context.WithTimeout(ctx, talkRoundLimit)
	c, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("talk: dialling %s: %w", addr, err)
	}
	ctx, cancel = context.WithCancel(ctx)
	tk := &Talk{cancel: cancel, done: make(chan struct{})}
	go tk.run(ctx, c)
	return tk, nil
}

func (tk *Talk) run(ctx context.Context, c net.Conn) {
	defer close(tk.done)
	defer c.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var out, in [8]byte
	for n := uint64(1); ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		binary.BigEndian.PutUint64(out[:], n)
		c.SetDeadline(time.Now().Add(talkRoundLimit))
		_, err := c.Write(out[:])
		if err == nil {
			_, err = io.ReadFull(c, in[:])
		}
		if err == nil && !bytes.Equal(in[:], out[:]) {
			err = fmt.Errorf("message %d came back as %x", n, in)
		}
		tk.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				tk.err = fmt.Errorf("talk: exchange %d: %w", n, err)
			}
			tk.mu.Unlock()
			return
		}
		tk.rounds++
		tk.mu.Unlock()
	}
}

// Rounds returns how many exchanges were answered so far, and the failure
// that stopped the talk, if any.
func (tk *Talk) Rounds() (int, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.rounds, tk.err
}

// Stop ends the talk and returns Rounds.
func (tk *Talk) Stop() (int, error) {
	tk.cancel()
	<-tk.done
	return tk.Rounds()
}
