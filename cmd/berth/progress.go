package main

import (
	"io"
	"sync"

	"github.com/berthrt/berth"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progressBars renders berth.Progress events as one bar per layer.
type progressBars struct {
	mu   sync.Mutex
	p    *mpb.Progress
	bars map[string]*mpb.Bar
}

func newProgressBars(w io.Writer) *progressBars {
	return &progressBars{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40)), bars: map[string]*mpb.Bar{}}
}

func (b *progressBars) update(ev berth.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := ev.ID
	if len(id) > 19 {
		id = id[7:19] // sha256:<12 hex>
	}
	bar, ok := b.bars[ev.ID]
	if !ok {
		bar = b.p.AddBar(ev.Total,
			mpb.PrependDecorators(decor.Name(id+" "), decor.Name(ev.State, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
		)
		b.bars[ev.ID] = bar
	}
	if ev.Total > 0 {
		bar.SetTotal(ev.Total, false)
	}
	bar.SetCurrent(ev.Done)
	if ev.State == berth.StateDone || ev.State == berth.StateExists {
		bar.SetTotal(ev.Done, true)
	}
}

func (b *progressBars) wait() {
	b.mu.Lock()
	for _, bar := range b.bars {
		if !bar.Completed() {
			bar.Abort(false)
		}
	}
	b.mu.Unlock()
	b.p.Wait()
}
