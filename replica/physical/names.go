package physical

import "github.com/daisychain-db/daisychain/replica"

// slotName names the conversion's physical replication slot on the
// source: replica.ObjectName with prefix "dcp", at most 57 bytes. It
// serves as the replica's application_name on the source too.
func slotName(id string) string { return replica.ObjectName("dcp", id) }
