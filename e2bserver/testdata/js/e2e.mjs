// E2B's official JS SDK (npm e2b, pinned in package.json) against a petty
// serve, unchanged: the Go test TestQEMUE2BSDK (e2bserver) starts petty serve
// on real QEMU guests and runs this with E2B_API_URL, E2B_SANDBOX_URL and
// E2B_API_KEY pointing at it. Every check prints one line "ok NAME" or
// "FAIL NAME: why"; the last line is a JSON summary {passed, failed,
// sdkCalls, ms}. The exit status is non-zero when a check failed.
import {
  AuthenticationError, CommandExitError, FileNotFoundError, Sandbox, TimeoutError,
} from 'e2b'

let sdkCalls = 0
// call counts one SDK call.
const call = (p) => { sdkCalls++; return p }
const results = []
const began = Date.now()

async function check(name, fn) {
  const t0 = Date.now()
  try {
    await fn()
    results.push({ name, ok: true })
    console.log(`ok ${name} (${Date.now() - t0} ms)`)
  } catch (err) {
    results.push({ name, ok: false })
    console.log(`FAIL ${name}: ${err?.stack ?? err}`)
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg) }
function eq(got, want, what) {
  assert(JSON.stringify(got) === JSON.stringify(want), `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}
async function throws(p, cls, what) {
  try { await p } catch (err) {
    assert(err instanceof cls, `${what}: threw ${err?.constructor?.name}: ${err?.message}, want ${cls.name}`)
    return err
  }
  throw new Error(`${what}: did not throw, want ${cls.name}`)
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const sbx = await call(Sandbox.create({ timeoutMs: 600_000, metadata: { suite: 'e2e' }, requestTimeoutMs: 300_000 }))
console.log(`created ${sbx.sandboxId} in ${Date.now() - began} ms`)

await check('commands.run: stdout, stderr, exit code 0', async () => {
  const r = await call(sbx.commands.run('echo out; echo err >&2'))
  eq([r.exitCode, r.stdout, r.stderr], [0, 'out\n', 'err\n'], 'result')
})

await check('commands.run: a non-zero exit is a CommandExitError', async () => {
  const err = await throws(call(sbx.commands.run('echo partial; exit 3')), CommandExitError, 'exit 3')
  eq([err.exitCode, err.stdout], [3, 'partial\n'], 'error')
})

await check('commands.run: onStdout streams output as it comes', async () => {
  const seen = []
  const t0 = Date.now()
  const r = await call(sbx.commands.run('echo first; sleep 3; echo second', {
    onStdout: (d) => seen.push({ d, at: Date.now() - t0 }),
  }))
  const first = seen.find((s) => s.d.includes('first'))
  const second = seen.find((s) => s.d.includes('second'))
  assert(first && second, `chunks ${JSON.stringify(seen)}`)
  assert(second.at - first.at >= 2000, `"first" came ${second.at - first.at} ms before "second": not streamed`)
  eq(r.stdout, 'first\nsecond\n', 'stdout')
})

await check('commands.run: default user, home and cwd; root by user', async () => {
  eq((await call(sbx.commands.run('whoami; pwd; echo $HOME'))).stdout, 'user\n/home/user\n/home/user\n', 'as the default user')
  eq((await call(sbx.commands.run('whoami', { user: 'root' }))).stdout, 'root\n', 'as root')
})

await check('commands.run: cwd', async () => {
  eq((await call(sbx.commands.run('pwd', { cwd: '/tmp' }))).stdout, '/tmp\n', 'pwd')
})

await check('commands.run: envs', async () => {
  eq((await call(sbx.commands.run('echo "$FOO $BAR"', { envs: { FOO: 'foo', BAR: 'b a r' } }))).stdout, 'foo b a r\n', 'echo')
})

await check('commands: stdin (sendStdin, closeStdin)', async () => {
  const h = await call(sbx.commands.run('cat; echo done', { background: true, stdin: true }))
  await call(sbx.commands.sendStdin(h.pid, 'hello '))
  await call(sbx.commands.sendStdin(h.pid, 'stdin\n'))
  await call(sbx.commands.closeStdin(h.pid))
  const r = await call(h.wait())
  eq(r.stdout, 'hello stdin\ndone\n', 'stdout')
})

await check('commands.run: without stdin, stdin is empty', async () => {
  eq((await call(sbx.commands.run('cat; echo eof'))).stdout, 'eof\n', 'stdout')
})

await check('commands.run: a timeout kills the command and leaves no process', async () => {
  const t0 = Date.now()
  await throws(call(sbx.commands.run('sleep 37; echo survived > /tmp/survived', { timeoutMs: 2000 })), TimeoutError, 'timeoutMs 2000')
  assert(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`)
  await sleep(3000) // past the SIGTERM→SIGKILL grace
  const ps = await call(sbx.commands.run('pgrep -f "sleep 3[7]" || echo none'))
  eq(ps.stdout, 'none\n', 'pgrep')
  eq(await call(sbx.files.exists('/tmp/survived')), false, 'the command went on')
  const listed = await call(sbx.commands.list())
  assert(!listed.some((p) => p.args.join(' ').includes('sleep 37')), `listed: ${JSON.stringify(listed)}`)
})

await check('commands: background, list, connect, kill', async () => {
  const h = await call(sbx.commands.run('echo started; sleep 600', { background: true }))
  assert(h.pid > 0, `pid ${h.pid}`)
  const listed = await call(sbx.commands.list())
  const p = listed.find((x) => x.pid === h.pid)
  assert(p && p.cmd === '/bin/bash' && p.args.join(' ').includes('sleep 600'), `list: ${JSON.stringify(listed)}`)
  const again = await call(sbx.commands.connect(h.pid))
  eq(again.pid, h.pid, 'connect')
  eq(await call(sbx.commands.kill(h.pid)), true, 'kill')
  // The end event must come at once; if not, say what the guest runs.
  let timer
  const late = new Promise((resolve) => { timer = setTimeout(resolve, 20_000, 'late') })
  const first = await Promise.race([h.wait().then(() => 'ended', () => 'ended'), late])
  clearTimeout(timer)
  if (first === 'late') {
    const ps = await sbx.commands.run('ps -eo pid,pgid,stat,user,args', { user: 'root' })
    throw new Error(`no end event 20 s after kill; processes listed: ${JSON.stringify(await sbx.commands.list())}; ps:\n${ps.stdout}`)
  }
  const err = await throws(call(h.wait()), CommandExitError, 'wait after kill')
  assert(err.exitCode !== 0, `exit code ${err.exitCode}`)
  eq(await call(sbx.commands.kill(h.pid)), false, 'kill of an ended process')
  const ps = await call(sbx.commands.run('pgrep -f "sleep 60[0]" || echo none'))
  eq(ps.stdout, 'none\n', 'pgrep')
})

await check('files: write, read, exists', async () => {
  const w = await call(sbx.files.write('/home/user/e2e/a.txt', 'hello files'))
  eq([w.name, w.path], ['a.txt', '/home/user/e2e/a.txt'], 'write info')
  eq(await call(sbx.files.read('/home/user/e2e/a.txt')), 'hello files', 'read')
  const bytes = await call(sbx.files.read('/home/user/e2e/a.txt', { format: 'bytes' }))
  eq(bytes.length, 11, 'read bytes')
  eq(await call(sbx.files.exists('/home/user/e2e/a.txt')), true, 'exists')
  eq(await call(sbx.files.exists('/home/user/e2e/nope')), false, 'exists (missing)')
  await throws(call(sbx.files.read('/home/user/e2e/nope')), FileNotFoundError, 'read (missing)')
  eq((await call(sbx.commands.run('stat -c %U /home/user/e2e /home/user/e2e/a.txt'))).stdout, 'user\nuser\n', 'owner')
  const rel = await call(sbx.files.write('rel.txt', ''))
  eq(rel.path, '/home/user/rel.txt', 'relative path')
  eq(await call(sbx.files.read('rel.txt')), '', 'read an empty file')
  const many = await call(sbx.files.write([{ path: '/tmp/m1', data: '1' }, { path: '/tmp/m2', data: new Blob(['22']) }]))
  eq(many.map((x) => x.path), ['/tmp/m1', '/tmp/m2'], 'write many')
  const big = 'x'.repeat(3 << 20)
  await call(sbx.files.write('/tmp/big', big, { useOctetStream: true }))
  eq((await call(sbx.files.read('/tmp/big'))).length, big.length, 'a 3 MiB file (octet-stream)')
})

await check('files: list, makeDir, rename, remove', async () => {
  eq(await call(sbx.files.makeDir('/home/user/e2e/sub')), true, 'makeDir')
  eq(await call(sbx.files.makeDir('/home/user/e2e/sub')), false, 'makeDir (exists)')
  const names = (await call(sbx.files.list('/home/user/e2e'))).map((e) => `${e.name}:${e.type}`).sort()
  eq(names, ['a.txt:file', 'sub:dir'], 'list')
  const moved = await call(sbx.files.rename('/home/user/e2e/a.txt', '/home/user/e2e/sub/b.txt'))
  eq([moved.name, moved.path], ['b.txt', '/home/user/e2e/sub/b.txt'], 'rename')
  const deep = (await call(sbx.files.list('/home/user/e2e', { depth: 2 }))).map((e) => e.path).sort()
  eq(deep, ['/home/user/e2e/sub', '/home/user/e2e/sub/b.txt'], 'list depth 2')
  await call(sbx.files.remove('/home/user/e2e/sub'))
  eq(await call(sbx.files.exists('/home/user/e2e/sub')), false, 'exists after remove')
  const info = await call(sbx.files.getInfo('/home/user/e2e'))
  eq([info.name, info.type], ['e2e', 'dir'], 'getInfo')
})

await check('Sandbox.list', async () => {
  const items = await call(Sandbox.list().nextItems())
  const mine = items.find((s) => s.sandboxId === sbx.sandboxId)
  assert(mine, `not listed: ${JSON.stringify(items)}`)
  eq([mine.state, mine.templateId, mine.metadata.suite], ['running', 'base', 'e2e'], 'listed')
  const filtered = await call(Sandbox.list({ query: { metadata: { suite: 'nope' } } }).nextItems())
  eq(filtered.length, 0, 'metadata filter')
})

await check('wrong API key: 401 (AuthenticationError)', async () => {
  await throws(call(Sandbox.create({ apiKey: 'e2b_0000000000000000000000000000000000000000' })), AuthenticationError, 'create')
  await throws(call(Sandbox.list({ apiKey: 'e2b_0000000000000000000000000000000000000000' }).nextItems()), AuthenticationError, 'list')
})

await check('wrong access token: 401 (AuthenticationError)', async () => {
  const bad = new Sandbox({ sandboxId: sbx.sandboxId, envdAccessToken: 'wrong', envdVersion: '0.5.7' })
  await throws(call(bad.files.read('/etc/hostname')), AuthenticationError, 'files.read')
  await throws(call(bad.commands.run('true')), AuthenticationError, 'commands.run')
  await throws(call(bad.files.list('/')), AuthenticationError, 'files.list')
})

await check('setTimeout: expiry destroys the sandbox', async () => {
  const short = await call(Sandbox.create({ timeoutMs: 600_000, requestTimeoutMs: 300_000 }))
  await call(short.setTimeout(2000))
  const deadline = Date.now() + 30_000
  while (await call(short.isRunning())) {
    assert(Date.now() < deadline, 'still running 30 s after a timeout of 2 s')
    await sleep(500)
  }
  const items = await call(Sandbox.list().nextItems())
  assert(!items.some((s) => s.sandboxId === short.sandboxId), 'still listed')
})

await check('kill', async () => {
  eq(await call(sbx.isRunning()), true, 'isRunning before kill')
  await call(sbx.kill())
  eq(await call(sbx.isRunning()), false, 'isRunning after kill')
  eq(await call(Sandbox.kill(sbx.sandboxId)), false, 'Sandbox.kill of a dead sandbox')
})

const failed = results.filter((r) => !r.ok).length
console.log(JSON.stringify({ passed: results.length - failed, failed, sdkCalls, ms: Date.now() - began }))
process.exit(failed ? 1 : 0)
