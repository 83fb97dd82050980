package gateway

// waitingPlaces returns the requests of every address waiting for a place
// in g's failed-authentication limiter.
func waitingPlaces(g *Server) int {
	g.limiter.mu.Lock()
	defer g.limiter.mu.Unlock()
	n := 0
	for _, w := range g.limiter.byAddr {
		n += len(w.waiting)
	}
	return n
}
