// Connector addresses: every form the contract accepts, and the messages for the rest.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseConnectorAddress, redactConnectionString } from '../../nodes/core/contract/connector-address';

describe('parseConnectorAddress', () => {
  it('reads a DSN', () => {
    assert.deepEqual(parseConnectorAddress('odbc://DSN_NAME'), { kind: 'odbc', connectionString: 'DSN=DSN_NAME', dsn: 'DSN_NAME', warnings: [] });
  });

  it('reads host, port, database and driver, passing other parameters through', () => {
    assert.deepEqual(parseConnectorAddress('odbc://db.city.gov:5432/permits?driver=PostgreSQL%20Unicode&sslmode=require'), {
      kind: 'odbc',
      connectionString: 'DRIVER={PostgreSQL Unicode};SERVER=db.city.gov;PORT=5432;DATABASE=permits;SSLMODE=require',
      driver: 'PostgreSQL Unicode',
      warnings: [],
    });
  });

  it('turns URL credentials into UID and PWD, bracing values that need it', () => {
    const address = parseConnectorAddress('odbc://clerk:p%3Bss@host:1/db?driver=X');
    assert.equal(address.kind === 'odbc' && address.connectionString, 'DRIVER={X};SERVER=host;PORT=1;DATABASE=db;UID=clerk;PWD={p;ss}');
  });

  it("accepts the seed's host:port without a driver, with a warning", () => {
    assert.deepEqual(parseConnectorAddress('odbc://city-mainframe:3060'), {
      kind: 'odbc',
      connectionString: 'SERVER=city-mainframe;PORT=3060',
      driver: undefined,
      warnings: ["connector 'odbc://city-mainframe:3060' names no ODBC driver; add ?driver=NAME or use a DSN"],
    });
  });

  it('passes a raw connection string through', () => {
    const raw = 'DRIVER={IBM DB2 ODBC DRIVER};DATABASE=PERMITS;HOSTNAME=mainframe;PORT=50000;PWD={a;b}';
    assert.deepEqual(parseConnectorAddress(`odbc:${raw}`), { kind: 'odbc', connectionString: raw, dsn: undefined, driver: 'IBM DB2 ODBC DRIVER', warnings: [] });
    assert.equal(parseConnectorAddress('odbc:DSN=Mainframe').kind === 'odbc' && parseConnectorAddress('odbc:DSN=Mainframe').warnings.length, 0);
  });

  it('reads mqtt and mqtts addresses with their topic', () => {
    assert.deepEqual(parseConnectorAddress('mqtt://broker:1883/sms/permits/{key}'), { kind: 'mqtt', url: 'mqtt://broker:1883', topic: 'sms/permits/{key}', warnings: [] });
    assert.deepEqual(parseConnectorAddress('mqtts://user:pw@broker/tracker'), { kind: 'mqtt', url: 'mqtts://user:pw@broker', topic: 'tracker', warnings: [] });
  });

  it('explains what is wrong with a bad address', () => {
    const cases: [string, RegExp][] = [
      ['', /is empty/],
      ['city-mainframe:3060', /has no scheme; use odbc:\/\/DSN/],
      ['obdc://host:1', /unsupported connector scheme 'obdc:\/\/' \(did you mean 'odbc:\/\/'\?\)/],
      ['postgres://host/db', /unsupported connector scheme 'postgres:\/\/'/],
      ['odbc://host:99999', /port '99999'/],
      ['odbc://host:1/db?driver=X&port=2', /gives PORT twice/],
      ['odbc:not a connection string', /where NAME=VALUE belongs/],
      ['mqtt://broker:1883', /names no topic/],
      ['mqtt://broker:1883/', /names no topic/],
      ['mqtt://broker/permits/#', /'\+' and '#' are only for subscribing/],
    ];
    for (const [address, message] of cases) assert.throws(() => parseConnectorAddress(address), message, address);
  });

  it('never repeats a password in its messages', () => {
    assert.throws(() => parseConnectorAddress('odbc://clerk:hunter2@host:0/db'), (error: Error) => !error.message.includes('hunter2') && /clerk:\*\*\*@/.test(error.message));
    const { warnings } = parseConnectorAddress('odbc://clerk:hunter2@host:1');
    assert.doesNotMatch(warnings.join(), /hunter2/);
  });
});

describe('redactConnectionString', () => {
  it('masks passwords in connection strings and URLs', () => {
    assert.equal(redactConnectionString('DRIVER={X};UID=clerk;PWD={se;cr}}et};SERVER=h'), 'DRIVER={X};UID=clerk;PWD=***;SERVER=h');
    assert.equal(redactConnectionString('Server=h;Password=hunter2'), 'Server=h;Password=***');
    assert.equal(redactConnectionString('mqtt://user:hunter2@broker:1883'), 'mqtt://user:***@broker:1883');
  });
});
