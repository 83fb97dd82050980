package route

import "testing"

// BenchmarkMeshEndEnvelope is the inbound classification 553dc84 added
// per lone message on a node's call subject: a result (the common case),
// an error result and a call.
func BenchmarkMeshEndEnvelope(b *testing.B) {
	res := appendResult(nil, 1, 123456, 0, 0, "", "", nil)
	res = append(res, make([]byte, 64)...)
	errRes := appendResult(nil, 1, 123456, rsError, 0, "wamp.error.canceled", "the call was canceled", nil)
	call := append([]byte{envCall, 1, 2, 3}, make([]byte, 64)...)
	for _, c := range []struct {
		name string
		env  []byte
	}{{"result", res}, {"error", errRes}, {"call", call}} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				if MeshEndEnvelope(c.env) {
					n++
				}
			}
			_ = n
		})
	}
}
