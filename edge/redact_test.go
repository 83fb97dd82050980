package edge

import "testing"

func TestRedactURLs(t *testing.T) {
	for _, c := range [][2]string{{"nats://u:p@h:1,nats://tok@h2:2", "nats://u:xxxxx@h:1,nats://xxxxx@h2:2"}, {"nats://h:1", "nats://h:1"}} {
		if g := redactURLs(c[0]); g != c[1] {
			t.Errorf("%s -> %s", c[0], g)
		}
	}
}
