package policy

import (
	"container/list"
	"crypto"
	"sync"
)

// keyCache keeps up to cap parsed private keys by domain id, dropping the
// least recently used one when full. A parsed RSA-2048 key costs about
// 9 KB of heap, so the default 10,000 keys stay under 100 MB.
type keyCache struct {
	cap int
	mu  sync.Mutex
	ll  *list.List // front: most recently used; values are *keyEntry
	m   map[string]*list.Element
}

type keyEntry struct {
	id  string
	key crypto.Signer
}

func newKeyCache(capacity int) *keyCache {
	return &keyCache{cap: capacity, ll: list.New(), m: make(map[string]*list.Element)}
}

func (c *keyCache) get(id string) (crypto.Signer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[id]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*keyEntry).key, true
}

func (c *keyCache) put(id string, k crypto.Signer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[id]; ok {
		el.Value.(*keyEntry).key = k
		c.ll.MoveToFront(el)
		return
	}
	c.m[id] = c.ll.PushFront(&keyEntry{id: id, key: k})
	for c.ll.Len() > c.cap {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*keyEntry).id)
	}
}

func (c *keyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.m)
}

// len is the number of cached keys.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
