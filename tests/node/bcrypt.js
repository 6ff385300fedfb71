// bcryptjs from the command line, for the Rust tests (tests/node_compat.rs).
//   node bcrypt.js hash <package>            reads a password on stdin, prints hashSync(pw, 12)
//   node bcrypt.js verify <package> <hash>   reads a password on stdin, prints true or false
// <package> is `bcryptjs` (3.x) or `bcryptjs-2` (2.4.3, the template's version).
'use strict';

const [command, pkg, hash] = process.argv.slice(2);
if (pkg !== 'bcryptjs' && pkg !== 'bcryptjs-2') {
  process.stderr.write(`unknown package ${pkg}\n`);
  process.exit(2);
}
const bcrypt = require(pkg);

let password = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  password += chunk;
});
process.stdin.on('end', () => {
  if (command === 'hash') {
    process.stdout.write(bcrypt.hashSync(password, 12) + '\n');
  } else if (command === 'verify') {
    process.stdout.write(String(bcrypt.compareSync(password, hash)) + '\n');
  } else {
    process.stderr.write(`unknown command ${command}\n`);
    process.exit(2);
  }
});
