package mqtt

import (
	"errors"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/testkit"
)

// outage makes an embedded Kafka refuse produce requests (by closing the
// connection that sends one) between Down and Up, as a broker that is down
// would; everything else it keeps serving.
type outage struct{ down atomic.Bool }

func kafkaOutage(k *testkit.Kafka) *outage {
	o := &outage{}
	k.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster.KeepControl()
		if o.down.Load() {
			return nil, errors.New("test: kafka is down"), true
		}
		return nil, nil, false
	})
	return o
}

func (o *outage) Down() { o.down.Store(true) }
func (o *outage) Up()   { o.down.Store(false) }
