// The demo page's script: connects to the task named in config.json
// (written by serve.mjs) or in the page's query (?server=URL&task=ID), and
// sends the value 1 on each click of the button.
(async () => {
  const log = document.getElementById('log');
  const button = document.getElementById('send');
  const say = (text, isError = false) => {
    const line = document.createElement('div');
    line.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    if (isError) line.className = 'error';
    log.prepend(line);
  };
  // Why a request failed, in words a page author can act on.
  const explain = (e) => {
    if (e instanceof hetally.ServerError) {
      return `the server refused it: ${e.status} ${e.problem ?? ''}${e.detail ? `: ${e.detail}` : ''}`;
    }
    if (e instanceof hetally.UnreachableError) {
      return (
        `${e.message}. Is the server up, and does it allow this page's origin? ` +
        `Start it with --cors-origin ${location.origin}`
      );
    }
    return e?.message ?? String(e);
  };

  const query = new URLSearchParams(location.search);
  let config = {};
  try {
    const res = await fetch('config.json');
    if (res.ok) config = await res.json();
  } catch {
    // No config.json: the query must say.
  }
  const server = query.get('server') ?? config.server;
  const task = query.get('task') ?? config.task;
  document.getElementById('server').textContent = server ?? '(none)';
  document.getElementById('task').textContent = task ?? '(none)';
  if (!server || !task) {
    say('no server or task: open the page as ?server=URL&task=TASK_ID, or start it with serve.mjs', true);
    return;
  }

  let client;
  say('connecting: fetching the task and checking it against its id');
  try {
    client = await hetally.connect(server, task);
  } catch (e) {
    say(`cannot connect to the task: ${explain(e)}`, true);
    return;
  }
  say('connected: the task definition matches its id');
  button.disabled = false;
  let sent = 0;
  button.addEventListener('click', async () => {
    button.disabled = true;
    const started = performance.now();
    try {
      await client.send(1);
      sent += 1;
      const ms = Math.round(performance.now() - started);
      say(`report ${sent} encrypted and accepted (${ms} ms)`);
    } catch (e) {
      say(`not sent: ${explain(e)}`, true);
    } finally {
      button.disabled = false;
    }
  });
})();
