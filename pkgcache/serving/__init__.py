"""HTTP: the application and its routes, the request handler, pure response
decisions, body sources and the sender that drains them. May import every
package below it (store, fetching, repositories, observe, settings);
nothing below imports it."""
