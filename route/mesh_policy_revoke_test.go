package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A mesh conflict between shared registrations of two policies (two nodes
// that registered during a partition) revokes the later node's callees
// with reason wamp.error.procedure_exists_with_different_invocation_policy,
// the error its REGISTER would have had had the partition not been; one
// against a single registration keeps procedure_already_exists. Before,
// both said procedure_already_exists.
func TestMeshPolicyConflictRevokedWithItsURI(t *testing.T) {
	for _, tc := range []struct {
		first, later, want string
	}{
		{"roundrobin", "random", proto.URIProcedureExistsInvocationPolicyConflict},
		{"roundrobin", "single", proto.URIProcedureExistsInvocationPolicyConflict},
		{"single", "first", proto.URIProcedureAlreadyExists},
	} {
		t.Run(tc.first+"/"+tc.later, func(t *testing.T) {
			t.Parallel()
			mm, es := newMemMesh(t, 2, 1, nil)
			a := es[0].join(proto.JSON)
			b := es[1].joinWith(proto.JSON, revocableFeatures)
			mm.hold, mm.noClaim = true, true
			a.register("com.p", map[string]any{"invoke": tc.first})
			es[1].clock.add(time.Second) // B's registers later
			id := b.register("com.p", map[string]any{"invoke": tc.later})
			mm.noClaim = false
			mm.release()
			mm.sync()
			b.expectRevoked(proto.CodeUnregistered, "registration", id, tc.want)
		})
	}
}
