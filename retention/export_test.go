package retention

// SetLimits shrinks the size of one purge event and one erase transaction, so a test's apply
// of a few thousand events crosses many of both.
func SetLimits(eventsPerPurge, erasePerTx int) {
	maxEventsPerPurge, eraseChunk = eventsPerPurge, int64(erasePerTx)
}
