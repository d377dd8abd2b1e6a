// The contract's `connector:` address, turned into what a connector opens: an ODBC
// connection string or an MQTT broker URL and topic.

import { didYouMean } from '../did-you-mean';

export type ConnectorAddress =
  | { kind: 'odbc'; connectionString: string; dsn?: string; driver?: string; warnings: string[] }
  | { kind: 'mqtt'; url: string; topic: string; warnings: string[] };

const FORMS = 'odbc://DSN, odbc://host:port/database?driver=NAME, odbc:DRIVER={...};SERVER=... or mqtt://host:port/topic';
const SCHEMES = ['odbc://', 'odbc:', 'mqtt://', 'mqtts://'];
const ATTRIBUTE_NAME = /^[A-Za-z][A-Za-z0-9_ ]*$/;
const PASSWORD_ATTRIBUTE = /\b(PWD|Password)(\s*=\s*)(\{(?:[^}]|\}\})*\}|[^;]*)/gi;
const URL_PASSWORD = /(\/\/[^:/@\s]*:)[^@/\s]*@/g;
const ENV_REFERENCE = /\$\{[A-Za-z_][A-Za-z0-9_]*\}/;

/**
 * Reads a connector address; throws an Error saying what is wrong and which forms exist.
 * An address still holding `${NAME}` (a flow keeps references until deploy) is judged as far
 * as it can be; what the references hide is read again once they are substituted.
 */
export function parseConnectorAddress(address: string): ConnectorAddress {
  try {
    return parseSubstitutedAddress(address);
  } catch (error) {
    if (ENV_REFERENCE.test(address)) return deferredAddress(address.trim());
    throw error;
  }
}

/**
 * The kind of an address whose references hide part of it. Only a literal `mqtt[s]://` makes
 * an MQTT destination; anything else is ODBC, as the exs-odbc node reads it at deploy. Its
 * `connectionString` is the address as written, to be substituted and read then.
 */
function deferredAddress(text: string): ConnectorAddress {
  const mqtt = /^(mqtts?:\/\/[^/]*)(?:\/(.*))?$/i.exec(text);
  if (mqtt) return { kind: 'mqtt', url: mqtt[1], topic: mqtt[2] ?? '', warnings: [] };
  return { kind: 'odbc', connectionString: text, warnings: [] };
}

function parseSubstitutedAddress(address: string): ConnectorAddress {
  const text = address.trim();
  // Messages quote the address, and messages end up in logs: never with its password.
  const shown = redactConnectionString(text);
  if (text === '') throw new Error(`the connector address is empty; use ${FORMS}`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):(\/\/)?/.exec(text);
  if (!scheme) throw new Error(`connector '${shown}' has no scheme; use ${FORMS}`);
  const name = scheme[1].toLowerCase();
  const rest = text.slice(scheme[0].length);
  if (name === 'odbc' && scheme[2]) return parseOdbcUrl(rest, shown);
  if (name === 'odbc') return parseRawConnectionString(rest);
  const isMqtt = name === 'mqtt' || name === 'mqtts';
  if (isMqtt && scheme[2]) return parseMqttUrl(rest, shown, name);
  // `city-mainframe:3060` reads like a scheme but is a host and port without one.
  if (!isMqtt && !scheme[2]) throw new Error(`connector '${shown}' has no scheme; use ${FORMS}`);
  throw new Error(`unsupported connector scheme '${scheme[0]}'${didYouMean(scheme[0], SCHEMES)}; use ${FORMS}`);
}

/** `odbc://DSN_NAME[?attr=x]` or `odbc://[user[:password]@]host[:port][/database][?driver=NAME&attr=x]`. */
function parseOdbcUrl(rest: string, address: string): ConnectorAddress {
  const decoded = (text: string) => decodePart(address, text);
  const match = /^(?:([^@/?]*)@)?(\[[^\]]*\]|[^/?:]*)(?::([^/?]*))?(?:\/([^?]*))?(?:\?(.*))?$/.exec(rest);
  if (!match || match[2] === '') throw new Error(`connector '${address}' names no DSN or host; use ${FORMS}`);
  const [, userInfo, host, port, database, query] = match;
  const [user, password] = userInfo === undefined ? [] : splitOnce(userInfo, ':');
  const credentials: Attribute[] = [['UID', user && decoded(user)], ['PWD', password && decoded(password)]];
  const parameters = queryAttributes(address, query ?? '');
  const driverParameter = parameters.find(([name]) => name === 'DRIVER');
  const driver = driverParameter?.[1];
  const passThrough = parameters.filter((parameter) => parameter !== driverParameter);

  // No port, database or driver: the name is a DSN that the ODBC manager resolves.
  if (port === undefined && database === undefined && driver === undefined) {
    const dsn = decoded(host);
    return odbc(address, [['DSN', dsn], ...credentials, ...passThrough], { dsn, warnings: [] });
  }
  if (port !== undefined && !isPort(port)) throw new Error(`connector '${address}' has port '${port}'; a port is a number from 1 to 65535`);
  const databaseName = database ? decoded(database) : undefined;
  if (databaseName?.includes('/')) throw new Error(`connector '${address}' names more than one database ('${databaseName}')`);
  const warnings = driver === undefined ? [`connector '${address}' names no ODBC driver; add ?driver=NAME or use a DSN`] : [];
  const attributes: Attribute[] = [
    ['DRIVER', driver && `{${driver}}`], ['SERVER', decoded(host)], ['PORT', port], ['DATABASE', databaseName], ...credentials, ...passThrough,
  ];
  return odbc(address, attributes, { driver, warnings });
}

/** `?driver=PostgreSQL%20Unicode&sslmode=require` -> upper-cased ODBC attributes, in order. */
function queryAttributes(address: string, query: string): [string, string][] {
  return query.split('&').filter(Boolean).map((part) => {
    const [rawName, rawValue = ''] = splitOnce(part, '=');
    const name = decodePart(address, rawName).toUpperCase();
    if (!ATTRIBUTE_NAME.test(name)) throw new Error(`connector '${address}' has a bad parameter name '${rawName}'`);
    return [name, decodePart(address, rawValue.replace(/\+/g, ' '))];
  });
}

/** `odbc:DRIVER={...};SERVER=...`: passed through as written, read only to learn DSN and DRIVER. */
function parseRawConnectionString(connectionString: string): ConnectorAddress {
  if (connectionString.trim() === '') throw new Error(`the odbc: connection string is empty; use ${FORMS}`);
  const attributes = new Map<string, string>();
  const attribute = /\s*([^=;]+?)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)\s*(?:;|$)/y;
  while (attribute.lastIndex < connectionString.length) {
    const start = attribute.lastIndex;
    const match = attribute.exec(connectionString);
    if (!match) {
      const rest = connectionString.slice(start).trim();
      if (rest === '') break;
      throw new Error(`the odbc: connection string has '${rest.split(';')[0]}' where NAME=VALUE belongs`);
    }
    attributes.set(match[1].toUpperCase(), unbrace(match[2].trim()));
  }
  const dsn = attributes.get('DSN');
  const driver = attributes.get('DRIVER');
  const warnings = dsn === undefined && driver === undefined ? ['the odbc: connection string names no ODBC driver; add DRIVER={NAME} or use a DSN'] : [];
  return { kind: 'odbc', connectionString, dsn, driver, warnings };
}

/** `mqtt[s]://[user:password@]host[:port]/some/topic`; the topic is required. */
function parseMqttUrl(rest: string, address: string, scheme: string): ConnectorAddress {
  const match = /^((?:[^@/]*@)?[^@/:]+(?::([^/]*))?)(?:\/(.*))?$/.exec(rest);
  if (!match) throw new Error(`connector '${address}' names no broker host; write ${scheme}://host:port/topic`);
  const [, authority, port, path = ''] = match;
  if (port !== undefined && !isPort(port)) throw new Error(`connector '${address}' has port '${port}'; a port is a number from 1 to 65535`);
  const topic = decodePart(address, path);
  if (topic === '') throw new Error(`connector '${address}' names no topic; write ${scheme}://host:port/some/topic`);
  if (/[+#]/.test(topic)) throw new Error(`connector '${address}' publishes to '${topic}', but '+' and '#' are only for subscribing`);
  return { kind: 'mqtt', url: `${scheme}://${authority}`, topic, warnings: [] };
}

/** An ODBC attribute; undefined values are left out of the connection string. */
type Attribute = [name: string, value: string | undefined];

function odbc(address: string, attributes: Attribute[], found: { dsn?: string; driver?: string; warnings: string[] }): ConnectorAddress {
  const given = attributes.filter((entry): entry is [string, string] => entry[1] !== undefined);
  const names = given.map(([name]) => name);
  const repeated = names.find((name, index) => names.indexOf(name) !== index);
  if (repeated) throw new Error(`connector '${address}' gives ${repeated} twice`);
  const connectionString = given.map(([name, value]) => `${name}=${name === 'DRIVER' ? value : braceIfNeeded(value)}`).join(';');
  return { kind: 'odbc', connectionString, ...found };
}

function isPort(text: string): boolean {
  return /^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;
}

/** ODBC values holding `;`, braces or edge spaces must be written `{...}`, with `}` doubled. */
function braceIfNeeded(value: string): string {
  return /[;{}]|^\s|\s$/.test(value) ? `{${value.replace(/\}/g, '}}')}}` : value;
}

function unbrace(value: string): string {
  return value.startsWith('{') && value.endsWith('}') ? value.slice(1, -1).replace(/\}\}/g, '}') : value;
}

function splitOnce(text: string, separator: string): [string, string?] {
  const at = text.indexOf(separator);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + separator.length)];
}

function decodePart(address: string, text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Error(`connector '${address}' has a broken %-escape`);
  }
}

/** The connection string or address with passwords masked, for logs and status text. */
export function redactConnectionString(connectionString: string): string {
  return connectionString
    .replace(PASSWORD_ATTRIBUTE, (_, name: string, equals: string) => `${name}${equals}***`)
    .replace(URL_PASSWORD, '$1***@');
}
