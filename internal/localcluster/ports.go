package localcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Ports for servers that tests start as child processes are picked below
// Linux's ephemeral range (32768-60999 by default): a port that the kernel
// hands out for ":0" or for an outgoing connection of another test can then
// never be the one a child process is about to bind. Picks are random, and
// this process never hands out the same port twice.
const (
	portMin = 20000
	portMax = 32000
)

var (
	portsMu sync.Mutex
	handed  = map[int]bool{}
)

// FreePort returns a port on 127.0.0.1 that is free now and that this
// process has not handed out before.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := portMin + rand.IntN(portMax-portMin)
		if handed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		handed[p] = true
		return p, nil
	}
	return 0, errors.New("no free port on 127.0.0.1 between 20000 and 32000")
}
