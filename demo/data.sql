-- demo/data.sql — a few fictitious customers and payments, inserted through the
-- proxy by demo/run.sh. All names, numbers and addresses are made up; card
-- numbers are the networks' public test numbers, IBANs the standard examples.
-- Each payment finds its customer by email (a lookup on the deterministic
-- column, encrypted by the proxy inside the subquery).

INSERT INTO customers (email, full_name, phone, tax_id, address, plan_tier, created_at, country_code) VALUES
 ('ines.moreau@example.fr', 'Inès Moreau', '+33 6 41 27 88 09', 'FR12345678901',
  '{"street": "14 rue des Lilas", "city": "Lyon", "postcode": "69003"}', 'business', '2024-01-15 09:12:00', 'FR'),
 ('jonas.becker@example.de', 'Jonas Becker', '+49 30 5557 2190', 'DE123456789',
  '{"street": "Torstraße 112", "city": "Berlin", "postcode": "10119"}', 'enterprise', '2024-02-03 14:40:00', 'DE'),
 ('sofia.rossi@example.it', 'Sofia Rossi', '+39 02 5558 1042', 'RSSSFO85M41F205Y',
  '{"street": "Via Tortona 27", "city": "Milano", "postcode": "20144"}', 'starter', '2024-03-21 11:05:00', 'IT'),
 ('pieter.dejong@example.nl', 'Pieter de Jong', '+31 20 555 0187', 'NL001234567B01',
  '{"street": "Keizersgracht 241", "city": "Amsterdam", "postcode": "1016 EA"}', 'business', '2024-04-08 16:30:00', 'NL'),
 ('marta.kowalska@example.pl', 'Marta Kowalska', '+48 22 555 31 70', 'PL1234567890',
  '{"street": "ul. Mokotowska 49", "city": "Warszawa", "postcode": "00-542"}', 'enterprise', '2024-05-27 08:55:00', 'PL');

INSERT INTO payments (customer_id, amount, currency, card_number, bank_account, status, created_at) VALUES
 ((SELECT id FROM customers WHERE email = 'ines.moreau@example.fr'),
  149.00, 'EUR', '4111 1111 1111 1111', NULL, 'settled', '2024-06-01 10:00:00'),
 ((SELECT id FROM customers WHERE email = 'ines.moreau@example.fr'),
  149.00, 'EUR', '4111 1111 1111 1111', NULL, 'settled', '2024-07-01 10:00:00'),
 ((SELECT id FROM customers WHERE email = 'jonas.becker@example.de'),
  2400.00, 'EUR', NULL, 'DE89 3704 0044 0532 0130 00', 'settled', '2024-06-03 09:30:00'),
 ((SELECT id FROM customers WHERE email = 'sofia.rossi@example.it'),
  29.00, 'EUR', '5555 5555 5555 4444', NULL, 'refunded', '2024-06-20 18:12:00'),
 ((SELECT id FROM customers WHERE email = 'pieter.dejong@example.nl'),
  149.00, 'EUR', NULL, 'NL91 ABNA 0417 1643 00', 'settled', '2024-06-08 12:00:00'),
 ((SELECT id FROM customers WHERE email = 'marta.kowalska@example.pl'),
  9800.00, 'PLN', NULL, 'PL61 1090 1014 0000 0712 1981 2874', 'pending', '2024-07-02 07:45:00');
