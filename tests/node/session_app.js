// An express app configured as the Pronghorn Node template configures its sessions:
// express-session with connect-pg-simple on the `session` table, the cookie `pronghorn.sid`,
// signed with SESSION_SECRET (comma-separated: several, the first signing). The Rust tests
// (tests/node_compat.rs) start it against their database and move one browser session
// between it and the Rust example server.
//
// Environment: DATABASE_URL, SESSION_SECRET. Prints {"port": N} once it listens.
'use strict';

const express = require('express');
const session = require('express-session');
const PgSession = require('connect-pg-simple')(session);
const { Pool } = require('pg');

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
const secrets = (process.env.SESSION_SECRET || '').split(',');

const app = express();
app.use(express.json());
app.use(
  session({
    store: new PgSession({ pool, tableName: 'session', pruneSessionInterval: false }),
    name: 'pronghorn.sid',
    secret: secrets.length > 1 ? secrets : secrets[0],
    resave: false,
    saveUninitialized: false,
    cookie: {
      httpOnly: true,
      secure: false,
      sameSite: 'lax',
      maxAge: 24 * 60 * 60 * 1000,
    },
  }),
);

// Logs in as the given user id, as the template's login does: a fresh session holding userId.
app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.userId = req.body.userId;
    req.session.save((err2) => {
      if (err2) return next(err2);
      res.json({ sid: req.sessionID });
    });
  });
});

// The session as express-session loaded it.
app.get('/me', (req, res) => {
  if (!req.session.userId) {
    res.status(401).json({ error: 'unauthenticated' });
    return;
  }
  res.json({ sid: req.sessionID, userId: req.session.userId, cookie: req.session.cookie.toJSON() });
});

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.json({ ok: true });
  });
});

app.use((err, req, res, next) => {
  res.status(500).json({ error: String(err && err.message) });
});

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

process.on('SIGTERM', () => server.close(() => pool.end()));
